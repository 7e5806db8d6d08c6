"""The eager guard in the model's context: choose TVM or PyTorch per subgraph by timing the graph.

The per-subgraph guard times a kernel alone, called again and again on the same inputs, with its
weights and activations hot in cache. Inside the model each subgraph reads activations the previous
one just wrote and weights that were evicted since, and pays its share of the graph's call overhead;
measured once on MobileNetV2 (tuned, 2 cores), the kernels the guard kept ran 24% slower in the
model than alone. And whatever each subgraph's choice, partitioning itself has a price.

So once every subgraph of a graph has compiled, the graph runs in alternating rounds with all
kernels in TVM and all in PyTorch, timing each subgraph where it stands; each subgraph keeps the
side that was faster there. The subgraphs left to PyTorch are inlined back into the graph (their
calls cost MobileNetV2 3-13%), and the result races the ATen graph as it was before partitioning,
all in PyTorch: it runs from then on only if it wins two races by 2% each (single races flipped on
this shared machine). If it loses, the best half of the winners is raced, then the best quarter...
So a graph where TVM does not pay for itself costs no more than PyTorch's ops, not even the calls
that partitioning adds.

Everything here is timed outside aot_autograd's first-call dispatch mode (guard.outside_tracing).
"""
from __future__ import annotations

import logging
import statistics
import time
from dataclasses import dataclass
from typing import Callable, Optional

import torch

from .guard import Timing, compare, outside_tracing

log = logging.getLogger("torch_wm_backend")
WARMUP = 3  # calls of each configuration before timing it
RACES, MARGIN = 2, 0.02  # the partitioned graph must beat the unpartitioned one twice, by 2% each


@dataclass
class ContextChoice:
    use_tvm: dict             # subgraph name -> run it in TVM
    raced: int                # how many ran in TVM in the last race against the unpartitioned graph
    graph: Optional[Callable]  # what runs from now on; None: the unpartitioned graph
    timing: Optional[Timing]  # the last race: the chosen graph (tvm_s) against the unpartitioned
                              # one (eager_s); None when there was nothing to race


def _rng_states():
    states = [torch.random.get_rng_state()]
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states.append(torch.cuda.get_rng_state_all())
    return states


def _restore_rng(states):
    torch.random.set_rng_state(states[0])
    if len(states) > 1:
        torch.cuda.set_rng_state_all(states[1])


def choose(graph, subgraphs: list, args: list, device: torch.device, reference, graph_for,
           budget_s: float = 1.0) -> ContextChoice:
    """Choose, by timing, which subgraphs run in TVM and whether anything beats ``reference``.

    ``graph`` is the partitioned graph, ``subgraphs`` its TvmSubgraph modules, already compiled for
    these inputs; ``reference`` the same ATen graph unpartitioned; ``graph_for(names)`` builds the
    graph that calls only those subgraphs and runs the others' ops inline. Graphs must be
    functional (aot_autograd's are): they are called again and again on the same inputs. Sets each
    subgraph's ``last.use_tvm``; the random-number state is put back afterwards.
    """
    subs = [s for s in subgraphs if s.last is not None and s.last.kernel is not None]
    if not subs:  # nothing runs in TVM: partitioning only adds calls
        return ContextChoice({}, 0, None, None)

    def run(mode: dict, g=graph):
        for s in subs:
            s.last.use_tvm = mode[s.name]
        g(*args)

    all_tvm = {s.name: True for s in subs}
    all_eager = {s.name: False for s in subs}
    before = {s.name: s.last.use_tvm for s in subs}
    rng = _rng_states()
    try:
        with torch.no_grad(), outside_tracing():
            gains = _gains_in_place(run, subs, all_tvm, all_eager, budget_s)
            # the subgraphs that won where they stand, best first; race all of them, then the best
            # half, quarter...: each subgraph left to PyTorch also sheds its call overhead
            order = sorted((n for n, g in gains.items() if g > 0), key=gains.get, reverse=True)
            use, chosen, timing, k, raced = all_eager, None, None, len(order), 0
            while k >= 1:
                raced = k
                mode = {n: n in order[:k] for n in all_eager}
                candidate = graph_for({n for n, on in mode.items() if on})
                timing = _race(lambda: run(mode, candidate), lambda: reference(*args), device)
                if timing.tvm_s * (1 + MARGIN) < timing.eager_s:
                    use, chosen = mode, candidate
                    break
                k //= 2
    except BaseException:  # Ctrl-C or a failure: the guard's own choices stand
        apply(subs, before)
        raise
    finally:
        _restore_rng(rng)
    apply(subs, use)
    return ContextChoice(use, raced, chosen, timing)


def _gains_in_place(run, subs, all_tvm, all_eager, budget_s) -> dict:
    """Per subgraph: its median time in PyTorch minus in TVM, each timed inside the whole graph."""
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
    log.debug("in context (ms, TVM/PyTorch): %s", ", ".join(
        f"{n}: {statistics.median(t) * 1e3:.3f}/{statistics.median(e) * 1e3:.3f}"
        for n, (t, e) in seen.items()))
    return {n: statistics.median(e) - statistics.median(t) for n, (t, e) in seen.items()}


def _race(candidate, reference, device) -> Timing:
    """The candidate against the reference: the last race's timing; each must be won by MARGIN."""
    for _ in range(WARMUP):  # measured: a cold reference ran 40% slower than warm
        candidate()
        reference()
    timing = None
    for _ in range(RACES):  # single races flipped on this shared machine
        timing = compare(candidate, reference, device, rounds=10, round_s=0.05)
        if not timing.tvm_s * (1 + MARGIN) < timing.eager_s:
            break
    return timing


def apply(subgraphs: list, use_tvm: dict) -> None:
    """Set choices made earlier (from the cache, or before a failed timing)."""
    for s in subgraphs:
        if s.last is not None and s.last.kernel is not None and s.name in use_tvm:
            s.last.use_tvm = bool(use_tvm[s.name])
