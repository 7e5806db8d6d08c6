"""TVM's kernels run on as many threads as PyTorch's.

TVM keeps one thread pool per calling thread. It sizes the pool from ``TVM_NUM_THREADS`` (then
``OMP_NUM_THREADS``) when the pool is made, and reads the variable again at every parallel launch
(a value of 1 runs the loop serially); with neither set it takes half the hardware threads on x86,
assuming hyper-threads: one of a 2-core machine's two cores, while PyTorch used both. Measured on
this 2-core machine, an elementwise kernel with a parallel outer loop ran in 31 ms at TVM's default
and 16 ms with the variable at 2; ``runtime.config_threadpool`` cannot grow a pool already made.

So, unless the user set ``TVM_NUM_THREADS`` (then theirs is used), the variable holds
``torch.get_num_threads()`` — which honours ``OMP_NUM_THREADS`` and ``torch.set_num_threads`` —
from before the backend's first kernel on: in this process, and by inheritance in the builder and
runner processes MetaSchedule starts. ``sync()`` is cheap and called before every kernel call, so a
later ``torch.set_num_threads(n)`` with ``n`` at most the pool's size takes effect.

TVM binds its pool's workers to cores (``TVM_BIND_THREADS``) and lets them spin when idle before
they sleep (300000 rounds of ``sched_yield``). Where a TVM kernel hands over to a PyTorch op, a
spinning worker takes a core from PyTorch's OpenMP threads: measured on a 2-core machine
(benchmarks/results/threads_mix.md, 2026-12-02), a parallel TVM kernel followed by a depthwise
convolution in PyTorch took ×11.6 their times alone with TVM's defaults, ×1.5 with the workers not
bound (still spinning). A module that calls PyTorch's matrix products between its own kernels (the
``matmul`` option) hands over at every product. So, unless the user set them, ``sync()`` sets
``TVM_BIND_THREADS=0`` and ``TVM_THREAD_POOL_SPIN_COUNT=0``: TVM reads both once, when its first
pool starts, and MetaSchedule's builder and runner processes inherit them, so a candidate is
measured as it will run.

A module that hands its products to PyTorch runs its own kernels on the calling thread alone
(``calling_thread_only``): after each product PyTorch's OpenMP workers still spin on the other
cores, and a TVM worker woken there waits for them. Measured in BERT-base's module (Intel, 2 cores,
2026-12-05, tuned at 2 threads, VM instrumented per call): layer norm 291 µs a call with TVM's pool
at 2, 29 µs on the calling thread (PyTorch's 31); the module's own kernels 19 ms against 6.5.
"""
from __future__ import annotations

import contextlib
import functools
import os

import torch

from .settings import TVM_THREADS_ENV, user_tvm_threads

BIND_ENV = "TVM_BIND_THREADS"
SPIN_ENV = "TVM_THREAD_POOL_SPIN_COUNT"

_last = [0]  # the count this process last applied


def count() -> int:
    """The threads TVM kernels use: the user's ``TVM_NUM_THREADS``, else PyTorch's thread count."""
    return user_tvm_threads() or torch.get_num_threads()


def sync() -> int:
    """Make TVM's thread count PyTorch's (or the user's) and its idle workers unbound and asleep
    (unless the user chose); the count."""
    user = user_tvm_threads()
    n = user or torch.get_num_threads()
    if n != _last[0]:  # the first call, or PyTorch's count changed: not on every kernel call
        if not user:
            os.environ[TVM_THREADS_ENV] = str(n)
        os.environ.setdefault(BIND_ENV, "0")
        os.environ.setdefault(SPIN_ENV, "0")
        _last[0] = n
    return n


def tvm_pool_threads() -> int:
    """The size of TVM's thread pool for the calling thread (made now if it was not)."""
    import tvm

    return int(tvm.get_global_func("runtime.NumThreads")())


@contextlib.contextmanager
def calling_thread_only():
    """TVM's kernels run on the calling thread alone while the block runs (its pool's workers are
    not woken); afterwards on ``count()`` threads again. Only the calling thread's pool changes."""
    configure = _config_threadpool()
    configure(1, 1)  # 1: TVM's "big cores" affinity mode, unbound unless the user bound threads
    try:
        yield
    finally:
        configure(1, count())


@functools.lru_cache(maxsize=None)
def _config_threadpool():
    import tvm

    return tvm.get_global_func("runtime.config_threadpool")  # looked up once: called per model call
