"""The eager guard in the model's context: choose TVM or PyTorch per subgraph by timing the graph.

The per-subgraph guard times a kernel alone, called again and again on the same inputs, with its
weights and activations hot in cache. Inside the model each subgraph reads activations the previous
one just wrote and weights that were evicted since, and pays its share of the graph's call overhead;
measured on MobileNetV2 (tuned, 2 cores), the kernels the guard kept ran 24% slower in the model than
alone and the model ran slower than eager although every kept kernel had won its own race.

So once every subgraph of a graph has compiled, the graph runs in alternating rounds with all
kernels in TVM and all in PyTorch, timing each subgraph where it stands; each subgraph keeps the
side that was faster there. Then the whole graph with those choices races the ATen graph as it was
before partitioning, all in PyTorch, and the faster runs from then on: a graph where TVM does not
pay for itself costs no more than PyTorch's ops, not even the calls that partitioning adds.
"""
from __future__ import annotations

import logging
import statistics
import time
from dataclasses import dataclass
from typing import Optional

import torch

from .guard import Timing, compare, outside_tracing

log = logging.getLogger("torch_wm_backend")
WARMUP = 3  # calls of each configuration before timing it


@dataclass
class ContextChoice:
    use_tvm: dict             # subgraph name -> run it in TVM
    raced: int                # how many ran in TVM in the race against the unpartitioned graph
    partitioned: bool         # False: the unpartitioned ATen graph, all in PyTorch, is faster
    timing: Optional[Timing]  # the partitioned graph with these choices (tvm_s) against the
                              # unpartitioned graph (eager_s); None when there was nothing to race


def _rng_states():
    states = [torch.random.get_rng_state()]
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states.append(torch.cuda.get_rng_state_all())
    return states


def _restore_rng(states):
    torch.random.set_rng_state(states[0])
    if len(states) > 1:
        torch.cuda.set_rng_state_all(states[1])


def choose(graph, subgraphs: list, args: list, device: torch.device, reference,
           budget_s: float = 1.0) -> ContextChoice:
    """Set each subgraph's ``last.use_tvm`` (its entry for ``args``) by timing ``graph(*args)``,
    and say whether the partitioned graph beats ``reference``, the same ATen graph unpartitioned.

    ``subgraphs`` are the graph's TvmSubgraph modules, already compiled for these inputs. The graphs
    must be functional (aot_autograd's graphs are): they are called again and again on the same
    inputs. The random-number state is put back afterwards.
    """
    subs = [s for s in subgraphs if s.last is not None and s.last.kernel is not None]
    if not subs:  # nothing runs in TVM: partitioning only adds calls
        return ContextChoice({}, 0, False, None)

    def run(mode: dict):
        for s in subs:
            s.last.use_tvm = mode[s.name]
        graph(*args)

    all_tvm = {s.name: True for s in subs}
    all_eager = {s.name: False for s in subs}
    before = {s.name: s.last.use_tvm for s in subs}
    rng = _rng_states()
    try:
        with torch.no_grad(), outside_tracing():
            for _ in range(WARMUP):  # first calls of a configuration are slow (allocations)
                run(all_tvm)
            start = time.perf_counter()
            for _ in range(WARMUP):
                run(all_eager)
            rounds = int(min(15, max(3, budget_s / 2 / max((time.perf_counter() - start) / WARMUP, 1e-6))))
            seen = {s.name: ([], []) for s in subs}  # in TVM, in PyTorch
            for _ in range(rounds):
                for side, mode in enumerate((all_tvm, all_eager)):
                    for s in subs:
                        s.timings = []
                    try:
                        run(mode)
                    finally:
                        for s in subs:
                            seen[s.name][side].append(sum(s.timings))
                            s.timings = None
            use = {name: statistics.median(t) < statistics.median(e) for name, (t, e) in seen.items()}
            log.debug("in context (ms, TVM/PyTorch): %s", ", ".join(
                f"{n}: {statistics.median(t) * 1e3:.3f}/{statistics.median(e) * 1e3:.3f}"
                for n, (t, e) in seen.items()))
            timing, raced, partitioned = None, sum(use.values()), any(use.values())
            if partitioned:
                for _ in range(WARMUP):  # measured: a cold reference ran 40% slower than warm
                    run(use)
                    reference(*args)
                timing = compare(lambda: run(use), lambda: reference(*args), device, rounds=10,
                                 round_s=0.05)
                partitioned = timing.tvm_wins
            if not partitioned:
                use = all_eager
    except BaseException:  # Ctrl-C or a failure: the guard's own choices stand
        apply(subs, before)
        raise
    finally:
        _restore_rng(rng)
    apply(subs, use)
    return ContextChoice(use, raced, partitioned, timing)


def apply(subgraphs: list, use_tvm: dict) -> int:
    """Set choices made earlier (from the cache); returns how many subgraphs it set."""
    n = 0
    for s in subgraphs:
        if s.last is not None and s.last.kernel is not None and s.name in use_tvm:
            s.last.use_tvm = bool(use_tvm[s.name])
            n += 1
    return n
