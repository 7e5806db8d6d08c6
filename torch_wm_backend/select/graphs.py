"""The callables that carry a choice out: a partitioned ATen graph, and an inference graph whole.

Each decides once, on its first call, under a lock: a model called from several threads compiles,
tunes and times once, and the other callers wait for it. Later calls read one attribute.
"""
from __future__ import annotations

import logging
import threading
from typing import Callable, Optional

import torch

from .. import counters, explanation
from .selection import Selection

log = logging.getLogger("torch_wm_backend")


class _DecidesOnFirstCall:
    """Runs ``self.current``; the first call, under a lock, is ``self._first(args)``."""

    def __init__(self):
        self.current = None
        self._lock = threading.Lock()

    def __call__(self, *args):
        current = self.current
        if current is not None:
            return current(*args)
        with self._lock:
            if self.current is None:
                return self._first(args)
        return self.current(*args)


class AtenGraph(_DecidesOnFirstCall):
    """A partitioned ATen graph (forward, backward or inference).

    ``subgraphs``: its TvmSubgraph modules; ``with_tvm(names)`` builds the graph that calls only
    those and runs the other subgraphs' ops inline; ``prepare()`` runs before the first call (it
    tunes the subgraphs' kernels together); ``on_first_call(self, args)`` after it, to choose.
    """

    def __init__(self, partitioned, original, subgraphs: list, with_tvm: Callable,
                 prepare: Optional[Callable] = None, on_first_call: Optional[Callable] = None,
                 whole=None):
        super().__init__()
        self.partitioned, self.original, self.subgraphs = partitioned, original, subgraphs
        self.whole = whole  # the whole graph as one TvmSubgraph (inference, every op lowered)
        self._with_tvm, self._prepare, self._on_first_call = with_tvm, prepare, on_first_call

    def _first(self, args):
        if self._prepare is not None:
            self._prepare()
        # with a whole-graph module, the partitioned subgraphs are built only if it loses its
        # race (select/choice.py): the first result comes from the ATen graph in PyTorch
        out = (self.original if self.whole is not None else self.partitioned)(*args)
        self.current = self.partitioned
        if self._on_first_call is not None:
            self._on_first_call(self, list(args))
        return out

    def compiled_subgraphs(self) -> list:
        """The subgraphs that hold a correct TVM kernel for their latest inputs."""
        return [s for s in self.subgraphs if s.has_kernel()]

    def set_modes(self, use: dict) -> None:
        for s in self.subgraphs:
            if s.name in use:
                s.use_tvm = bool(use[s.name])

    def keep(self, use: dict, wins: bool) -> None:
        """Run from now on: the subgraphs ``use`` names in TVM, or the original graph."""
        self.current = self.try_modes(use) if wins and any(use.values()) else self.original

    def try_modes(self, use: dict):
        """The graph with ``use``'s subgraphs in TVM (or the whole graph, if it names it)."""
        if self.whole is not None and use.get(self.whole.name):
            return self.whole
        self.set_modes(use)
        return self._with_tvm({n for n, on in use.items() if on})


def choose_for_training(graph: AtenGraph, args: list, selection: Selection, device,
                        verdict: Optional[Callable] = None):
    """A graph whose backward is compiled too races the original ATen graph, all in PyTorch.
    ``verdict(kept_tvm)`` hears whether any subgraph stays in TVM."""
    cached = selection.cached()
    subs = graph.compiled_subgraphs()
    if cached is not None:
        choice = cached
    else:
        def run_mode(use):
            graph.set_modes(use)
            graph.partitioned(*args)

        def candidate_for(use):
            g = graph.try_modes(use)
            return lambda: g(*args)

        try:
            choice = selection.decide(subs, run_mode, candidate_for,
                                      lambda: graph.original(*args), device)
        except Exception as err:  # every subgraph keeps its kernel
            graph.set_modes({s.name: True for s in subs})
            log.warning("tvm_wm: timing the %s failed (%s); continuing", selection.name, err)
            return
    graph.keep(choice.use_tvm, choice.wins)
    Selection.count(choice, len(subs), False)
    explanation.chose(graph, choice, len(subs), cached is not None)
    if verdict is not None:
        verdict(choice.wins and any(choice.use_tvm.values()))


class TrainingGraph:
    """A graph that builds an autograd graph: aot_autograd's compiled forward and backward until
    both have chosen. Where neither keeps a subgraph in TVM, Dynamo's graph from then on, run by
    PyTorch with eager autograd (what ``backend="eager"`` runs): the compiled graphs would only add
    aot_autograd's functionalized, decomposed ATen ops, slower than eager (benchmarks/results/
    train_step.md). Where some stay in TVM, a whole training step (forward and gradients) of the
    compiled graphs races one of Dynamo's graph with eager autograd, and the faster runs on."""

    def __init__(self, compiled, gm: torch.fx.GraphModule, timer=None):
        self.compiled, self.gm, self.timer = compiled, gm, timer
        self.kept_tvm: dict = {}  # "forward"/"backward" -> whether it keeps a subgraph in TVM
        self.current = None

    def verdict(self, kind: str):
        def hear(kept_tvm: bool):
            self.kept_tvm[kind] = kept_tvm
        return hear

    def __call__(self, *args):
        current = self.current
        if current is not None:
            return current(*args)
        kept = self.kept_tvm
        if "forward" in kept and "backward" in kept:
            keep = (kept["forward"] or kept["backward"]) and self._step_wins(args)
            self.current = self.compiled if keep else self.gm
            counters.bump("graphs_kept_compiled" if keep else "graphs_kept_eager")
            return self.current(*args)
        return self.compiled(*args)

    def _step_wins(self, args) -> bool:
        """Whether a training step of the compiled graphs beats one of Dynamo's graph: forward,
        then the gradients of what needs one by ``torch.autograd.grad`` (nothing accumulates in a
        ``.grad``). What the steps write besides (batch norm's running statistics) is put back."""
        from ..runtime.subgraph import device_of
        from .race import race

        if self.timer is None:
            return True
        tensors = [a for a in args if isinstance(a, torch.Tensor)] + list(self.gm.buffers())
        wrt = [t for t in tensors + list(self.gm.parameters()) if t.requires_grad]
        kept = [(t, t._version, t.detach().clone()) for t in tensors if not t.requires_grad]

        def step(fn):
            def run():
                with torch.enable_grad():
                    outs = fn(*args)
                    outs = [o for o in (outs if isinstance(outs, (tuple, list)) else [outs])
                            if isinstance(o, torch.Tensor) and o.requires_grad]
                    if outs and wrt:
                        torch.autograd.grad(outs, wrt, [torch.ones_like(o) for o in outs],
                                            allow_unused=True)
            return run

        try:
            timing = race(step(self.compiled), step(self.gm), device_of(tensors), self.timer)
        except Exception as err:  # the compiled graphs stay, as each chose
            log.warning("tvm_wm: timing the training step against eager failed (%s); continuing",
                        err)
            return True
        finally:
            with torch.no_grad():
                for t, version, value in kept:
                    if t._version != version:
                        t.copy_(value)
        log.info("tvm_wm: a training step with TVM's kernels %.3f ms, eager autograd %.3f ms: %s",
                 timing.candidate_s * 1e3, timing.reference_s * 1e3,
                 "TVM's" if timing.candidate_wins else "eager autograd")
        return timing.candidate_wins


class InferenceGraph(_DecidesOnFirstCall):
    """An inference graph whole: after its first call, the compiled graph (its ATen graph with the
    subgraphs chosen in TVM) or Dynamo's graph run by PyTorch (what ``backend="eager"`` runs),
    whichever won one race. A graph that writes its inputs (a buffer's step counter) must run once
    per call and is not raced; nor is one that builds an autograd graph."""

    def __init__(self, compiled, gm: torch.fx.GraphModule, selection: Selection, device_of):
        super().__init__()
        self.compiled, self.gm, self.selection, self.device_of = compiled, gm, selection, device_of
        self.aten: Optional[AtenGraph] = None  # set by adopt() when the ATen graph first runs
        self.aten_args: list = []
        self._args: tuple = ()

    def adopt(self, graph: AtenGraph, args: list) -> None:
        """The ATen graph's first call: apply a cached choice to it, or remember it to choose."""
        self.aten, self.aten_args = graph, args
        whole = graph.whole
        if whole is not None and whole.weights and not _same_weights(whole.weights, args,
                                                                     self._args):
            whole.weights = ()  # the ATen graph's inputs are not Dynamo's: keep them inputs
        cached = self.selection.cached()
        if cached is not None and cached.wins:
            graph.keep(cached.use_tvm, True)
            Selection.count(cached, len(graph.compiled_subgraphs()), True)
            explanation.chose(graph, cached, len(graph.subgraphs), True)

    def _first(self, args):
        if builds_autograd(self.gm, args):
            self.current = self.compiled
            return self.compiled(*args)
        tensors = [a for a in args if isinstance(a, torch.Tensor)] + list(self.gm.buffers())
        versions = [t._version for t in tensors]
        self._args = args
        out = self.compiled(*args)
        if self.aten is None:  # nothing went to TVM: Dynamo's graph is PyTorch without detours
            self.current = self.gm
            counters.bump("graphs_kept_eager")
            return out
        if self.selection.cached() is not None:  # a warm start: adopt() applied it
            self.current = self.compiled
            return out
        if versions != [t._version for t in tensors]:
            self.current = self.compiled
            return out
        self.current = self._choose(list(args))
        return out

    def _choose(self, args: list):
        graph, compiled = self.aten, self.compiled
        whole = graph.whole
        if whole is not None and not whole.compile_for(self.aten_args):
            whole = None  # TVM could not build the whole graph correctly: subgraphs only

        def run_mode(use):
            graph.current = graph.partitioned
            graph.set_modes(use)
            compiled(*args)

        def subs():  # built on their first call (AtenGraph._first), if the whole module lost
            if graph.whole is not None:
                run_mode({s.name: True for s in graph.subgraphs})
            return graph.compiled_subgraphs()

        def candidate_for(use):
            graph.current = graph.try_modes(use)
            return lambda: compiled(*args)

        try:
            choice = self.selection.decide(subs, run_mode, candidate_for, lambda: self.gm(*args),
                                           self.device_of(args), whole and whole.name,
                                           self._direct(whole, args))
        except Exception as err:  # the compiled graph stays, every kernel in TVM
            graph.current = graph.partitioned
            graph.set_modes({s.name: True for s in graph.subgraphs})
            log.warning("tvm_wm: timing the graph against eager PyTorch failed (%s); continuing", err)
            return compiled
        graph.keep(choice.use_tvm, choice.wins)
        n = len(graph.subgraphs) if choice.whole else len(graph.compiled_subgraphs())
        Selection.count(choice, n, True)
        explanation.chose(graph, choice, n, False)
        return compiled if choice.wins else self.gm

    def _direct(self, whole, args: list) -> Optional[dict]:
        """How the whole module can run on Dynamo's inputs directly, skipping aot_autograd on a
        warm start: when the ATen graph takes Dynamo's inputs as they are and returns Dynamo's
        outputs (no input mutated, no alias, only tensors). None where it cannot."""
        kernel = whole.last if whole is not None else None
        parts = getattr(kernel, "cache_parts", None)
        aten = self.aten_args
        if parts is None or len(aten) != len(args) or not all(
                isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape == b.shape
                and a.dtype == b.dtype for a, b in zip(aten, args)):
            return None
        try:
            with torch.no_grad():
                ref, mine = self.gm(*args), whole(*aten)
        except Exception:
            return None
        mine = list(mine) if isinstance(mine, (tuple, list)) else [mine]
        if not isinstance(ref, (tuple, list)) or len(ref) != len(mine) or not all(
                isinstance(r, torch.Tensor) and r.shape == m.shape and r.dtype == m.dtype
                for r, m in zip(ref, mine)):
            return None
        return {"kernel": parts, "weights": list(whole.weights), "tuple": isinstance(ref, tuple)}


def _same_weights(positions, aten_args, args) -> bool:
    return len(aten_args) == len(args) and all(aten_args[i] is args[i] for i in positions)


def builds_autograd(gm: torch.fx.GraphModule, args) -> bool:
    if not torch.is_grad_enabled():
        return False
    tensors = [a for a in args if isinstance(a, torch.Tensor)] + list(gm.parameters())
    return any(t.requires_grad for t in tensors)
