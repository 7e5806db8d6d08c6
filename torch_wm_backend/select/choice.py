"""Which subgraphs of a graph run in TVM, and whether the result beats the reference at all.

A kernel timed alone, called again and again on the same inputs, has its weights and activations
hot in cache; inside the model each subgraph reads activations the previous op just wrote and
weights that were evicted since, and pays its share of the graph's call overhead (measured once on
MobileNetV2, tuned, 2 cores: kernels chosen alone ran 24% slower in the model than alone). So the
graph runs in alternating rounds all in TVM and all in PyTorch, timing every subgraph where it
stands; the subgraphs that were faster in TVM there, best first, are raced as one graph against the
reference: all of them, then the best half, the best quarter... The first candidate that wins runs
from then on; if none does, the reference runs, and the model pays nothing for partitioning.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Optional

import torch

from .race import WARMUP, Timing, quiet_timing, race


@dataclass(frozen=True)
class Choice:
    use_tvm: dict               # subgraph name -> run it in TVM (when ``wins``)
    wins: bool                  # a candidate beat the reference: run it, else the reference
    timing: Optional[Timing]    # its last race; None when there was nothing to race
    whole: bool = False         # the winner is the whole graph as one module
    in_place: Optional[dict] = None  # subgraph name -> (seconds in TVM, in PyTorch), timed in place
    whole_timing: Optional[Timing] = None  # the whole module's race, where it ran and lost


def choose(subgraphs: list, run_mode: Callable, candidate_for: Callable, reference: Callable,
           device: torch.device, timer, whole: Optional[str] = None,
           budget_s: float = 1.0) -> Choice:
    """``subgraphs``: those with a TVM kernel (``.name``, ``.timings``), or a function that builds
    and returns them (called only if the whole module loses); ``run_mode(use)`` runs the
    whole graph with ``use[name]`` choosing each one's side; ``candidate_for(use)`` returns the
    callable that runs the graph so (subgraphs left to PyTorch inlined); ``reference()`` runs what
    runs otherwise. All are called on the same inputs again and again: graphs must be functional.
    ``whole``: the name of one module holding the whole graph (one VM call, TVM's memory planning,
    no Python between kernels), raced first; ``candidate_for({whole: True})`` runs it."""
    lost = None
    if whole is not None:
        use = {whole: True}
        timing = race(candidate_for(use), reference, device, timer)
        if timing.candidate_wins:
            return Choice(use, True, timing, whole=True)
        lost = timing
    if callable(subgraphs):
        subgraphs = subgraphs()
    all_eager = {s.name: False for s in subgraphs}
    if not subgraphs:  # nothing runs in TVM: partitioning only adds calls
        return Choice(all_eager, False, None, whole_timing=lost)
    all_tvm = {s.name: True for s in subgraphs}
    with quiet_timing():
        for _ in range(WARMUP):  # first calls of a configuration are slow (allocations)
            run_mode(all_tvm)
        start = time.perf_counter()
        for _ in range(WARMUP):
            run_mode(all_eager)
        per_call = max((time.perf_counter() - start) / WARMUP, 1e-6)
        rounds = int(min(15, max(3, budget_s / 2 / per_call)))
        in_tvm, in_eager = timer.in_place(run_mode, subgraphs, (all_tvm, all_eager), rounds)
    gains = {n: in_eager[n] - in_tvm[n] for n in all_tvm}
    in_place = {n: (in_tvm[n], in_eager[n]) for n in all_tvm}
    order = sorted((n for n, g in gains.items() if g > 0), key=gains.get, reverse=True)
    k, timing = len(order), None
    while k >= 1:
        use = {n: n in order[:k] for n in all_tvm}
        timing = race(candidate_for(use), reference, device, timer)
        if timing.candidate_wins:
            return Choice(use, True, timing, in_place=in_place, whole_timing=lost)
        k //= 2
    return Choice(all_eager, False, timing, in_place=in_place, whole_timing=lost)
