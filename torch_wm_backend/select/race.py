"""The one race: a candidate against a reference, each called on the same inputs, timed.

Both are timed in alternating rounds and compared by their median round: what a call typically
takes, which is what the user gets. Load from other processes falls on both sides alike when they
alternate; the fastest round would be the least disturbed reading, but it hides how much a side
varies by itself. Measured on BERT-base (Intel Xeon, 2 cores, 2026-12-06, one process, 10
interleaved rounds): its module, whose calls hand over between TVM's calling thread and PyTorch's
OpenMP threads at every product, took 107 ms at its fastest and 121 typically (eager: 123 and 129);
raced by fastest rounds it had lost to Dynamo's graph, 106 ms against 107. The CPU time other processes
used meanwhile is measured too; a race run on a busy machine decides for this process only and is
not cached. The candidate must win ``RACES`` races by ``MARGIN`` each: single races flipped on this
shared 2-core machine. Random-number state is put back afterwards, so a graph with dropout draws as
one call does.

Each timed round starts with one untimed call: where the two sides alternate, the first call after
a switch pays for the other side's thread pool still spinning (TVM's workers, PyTorch's OpenMP
threads; benchmarks/results/threads_mix.md: a pair of short kernels ×1.5 their times alone), which
a program that runs only one of them never pays.

Everything is timed outside aot_autograd's first-call dispatch mode: there every ATen op is slower
(measured on MobileNetV2: PyTorch's ops 26 ms inside, 17 ms after), while TVM's kernels, which
bypass the dispatcher, are not, so timing there favoured TVM.
"""
from __future__ import annotations

import contextlib
import statistics
import time
from dataclasses import dataclass

import psutil
import torch

MARGIN = 0.02  # the candidate must be this much faster than the reference...
RACES = 2      # ...in this many races in a row
WARMUP = 3     # calls of each before timing (measured: a cold reference ran 40% slower than warm)
BUSY_FRACTION = 0.25  # others used more than this share of the cores while we timed: busy
HOPELESS = 3.0  # a candidate this many times slower than the reference in a call (after the
# warm-up) loses without timed rounds: an untuned partitioned MobileNetV2 (default kernels) ran ~30x
# slower than eager, and timing it in full rounds took 80 of a 168 s cold compile (profile, loaded)


@dataclass(frozen=True)
class Timing:
    candidate_s: float
    reference_s: float
    busy: bool = False  # other processes used the CPU meanwhile (or the timing was too short to
    # tell): decide, but do not cache

    @property
    def candidate_wins(self) -> bool:
        """The margin rule, the only one."""
        return self.candidate_s * (1 + MARGIN) < self.reference_s


class Timer:
    """Measures on the wall clock. Tests pass a timer of their own with the same two methods."""

    def __init__(self, rounds: int = 10, round_s: float = 0.05):
        self.rounds, self.round_s = rounds, round_s

    def compare(self, candidate, reference, device: torch.device) -> Timing:
        """Median of ``rounds`` alternating rounds of each; a candidate ``HOPELESS`` times slower
        than the reference in one call each loses there."""
        others = _Others()
        cand_call, ref_call = _round(candidate, 1, device), _round(reference, 1, device)
        if cand_call > HOPELESS * ref_call:
            return Timing(cand_call, ref_call, busy=others.busy())
        n_cand = max(1, int(self.round_s / max(cand_call, 1e-7)))
        n_ref = max(1, int(self.round_s / max(ref_call, 1e-7)))
        cand, ref = [], []
        for _ in range(self.rounds):
            cand.append(_round(candidate, n_cand, device))
            ref.append(_round(reference, n_ref, device))
        return Timing(statistics.median(cand), statistics.median(ref), busy=others.busy())

    def in_place(self, run, subgraphs: list, modes: tuple, rounds: int) -> list:
        """Per mode, per subgraph: the median wall time of its calls while ``run(mode)`` ran the
        whole graph (subgraphs append their call times to ``.timings`` while it is a list)."""
        seen = [{s.name: [] for s in subgraphs} for _ in modes]
        for _ in range(rounds):
            for side, mode in enumerate(modes):
                for s in subgraphs:
                    s.timings = []
                try:
                    run(mode)
                finally:
                    for s in subgraphs:
                        seen[side][s.name].append(sum(s.timings))
                        s.timings = None
        return [{n: sorted(t)[len(t) // 2] for n, t in side.items()} for side in seen]


def race(candidate, reference, device: torch.device, timer) -> Timing:
    """The candidate against the reference: the last race's timing (a loss ends the series)."""
    with quiet_timing():
        for _ in range(WARMUP):
            candidate()
            reference()
        timing = None
        for _ in range(RACES):
            timing = timer.compare(candidate, reference, device)
            if not timing.candidate_wins:
                break
    return timing


@contextlib.contextmanager
def quiet_timing():
    """No autograd, no tracing modes, and the random-number state as it was."""
    from torch.utils._python_dispatch import _disable_current_modes

    cuda = torch.cuda.is_available() and torch.cuda.is_initialized()
    cpu_state = torch.random.get_rng_state()
    cuda_state = torch.cuda.get_rng_state_all() if cuda else None
    try:
        with torch.no_grad(), _disable_current_modes():
            yield
    finally:
        torch.random.set_rng_state(cpu_state)
        if cuda_state is not None:
            torch.cuda.set_rng_state_all(cuda_state)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _round(fn, number: int, device: torch.device) -> float:
    fn()  # settles: the other side's pool stops spinning (module docstring)
    _sync(device)
    start = time.perf_counter()
    for _ in range(number):
        fn()
    _sync(device)
    return (time.perf_counter() - start) / number


class _Others:
    """The CPU time other processes use from now on, against the wall clock."""
    SHORTEST_S = 0.2  # the kernel counts CPU time in ticks (10 ms): shorter windows cannot tell

    def __init__(self):
        self.proc = psutil.Process()
        self.wall, self.total, self.own = time.perf_counter(), _cpu_busy_s(), _own_cpu_s(self.proc)

    def busy(self) -> bool:
        wall = time.perf_counter() - self.wall
        if wall < self.SHORTEST_S:  # a hopeless loss can be this quick; full rounds take ~1 s
            return True  # too short to tell: decide, do not cache
        others = (_cpu_busy_s() - self.total) - (_own_cpu_s(self.proc) - self.own)
        return others > BUSY_FRACTION * _cores() * wall


def _cpu_busy_s() -> float:
    t = psutil.cpu_times()
    return t.user + t.system + getattr(t, "nice", 0.0) + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0)


def _own_cpu_s(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return t.user + t.system


def _cores() -> int:
    from ..lower.target import _cpu_cores

    return _cpu_cores()
