"""The eager guard's last word: the whole compiled graph against the graph as eager PyTorch runs it.

Inside aot_autograd the context step (context.py) races TVM's kernels against the ATen graph
unpartitioned. That graph is not what eager runs: it is functionalized and decomposed to core ATen
(an inference batch norm becomes several elementwise ops), and called op by op from Python. Where a
model is bound by kernel launches, as at batch 1 on a GPU, it is slower than eager, so winning
against it is not enough: untuned ResNet-50 on an H200 kept 31 TVM subgraphs and ran x0.84 of eager
(benchmarks/results/gpu_context_only.md). With this step it ran Dynamo's graph and x1.14 of eager
(gpu.md: the flat graph skips nn.Module's per-call Python, and the GPU waits on the CPU at batch 1).

So after an inference graph's first call, the compiled callable races the FX graph Dynamo captured,
run by PyTorch (what ``backend="eager"`` runs), and the loser never runs again. The compiled one
must win two races by 2% each (context.py's rule). The choice is cached with the graph (not when
the machine was busy); on a warm start a graph that lost is handed back to Dynamo before
aot_autograd even traces it (``eager_won_before``). Graphs that build an autograd graph are not raced: their backward, compiled
too, would need timing as well; nor are graphs that write their inputs (a buffer's step counter),
which must run once per call.
"""
from __future__ import annotations

import logging

import torch

from .. import counters
from .context import _race, _restore_rng, _rng_states, MARGIN
from .guard import outside_tracing
from .subgraph import device_of

log = logging.getLogger("torch_wm_backend")
FORMAT = "versus-eager-1"


class VersusEager:
    """Calls ``compiled``; after the first call, whichever of it and ``gm`` was faster."""

    def __init__(self, compiled, gm: torch.fx.GraphModule, settings):
        self.compiled, self.gm, self.settings = compiled, gm, settings
        self.chosen = None

    def __call__(self, *args):
        if self.chosen is not None:
            return self.chosen(*args)
        self.chosen = self.compiled
        if _builds_autograd(self.gm, args):
            return self.compiled(*args)
        store, parts, cached = lookup(self.gm, args, self.settings)
        if cached is not None:  # a warm start: the loser does not even run once
            return self._keep(cached)(*args)
        tensors = [a for a in args if isinstance(a, torch.Tensor)] + list(self.gm.buffers())
        versions = [t._version for t in tensors]
        out = self.compiled(*args)
        if versions != [t._version for t in tensors]:
            return out  # a graph that writes its inputs must run once per call: no race
        try:
            self._keep(self._race(list(args), store, parts))
        except Exception as err:  # the compiled graph stays
            log.warning("tvm_wm: timing the graph against eager PyTorch failed (%s); continuing", err)
        return out

    def _keep(self, compiled_wins: bool):
        self.chosen = self.compiled if compiled_wins else self.gm
        counters.bump("graphs_kept_compiled" if compiled_wins else "graphs_kept_eager")
        return self.chosen

    def _race(self, args: list, store, parts) -> bool:
        device = device_of([a for a in args if isinstance(a, torch.Tensor)])
        rng = _rng_states()
        try:
            with torch.no_grad(), outside_tracing():
                timing = _race(lambda: self.compiled(*args), lambda: self.gm(*args), device)
        finally:
            _restore_rng(rng)
        wins = timing.tvm_s * (1 + MARGIN) < timing.eager_s
        log.info("tvm_wm graph: compiled %.3f ms, eager PyTorch %.3f ms -> %s%s", timing.tvm_s * 1e3,
                 timing.eager_s * 1e3, "compiled" if wins else "eager",
                 " (machine busy: not cached)" if timing.busy else "")
        if store is not None and not timing.busy:
            store.put(parts, {}, {"compiled_wins": wins, "compiled_ms": timing.tvm_s * 1e3,
                                  "eager_ms": timing.eager_s * 1e3})
        return wins


def lookup(gm: torch.fx.GraphModule, args, settings):
    """``(store, key parts, cached choice)``: the choice is True (compiled won), False (eager won)
    or None (not raced yet, or no cache: then store and parts may be None too)."""
    from ..lower import target_for
    from ..pipeline import cache_key, store_for

    try:
        device = device_of([a for a in args if isinstance(a, torch.Tensor)])
        store = store_for(settings.cache_dir)
        parts = {**cache_key(gm, list(args), target_for(device), settings), "format": FORMAT}
        entry = store.get(parts, count=False)
    except Exception as err:  # no cache: race as if it were empty
        log.debug("versus eager: no cached choice (%s)", err)
        return None, None, None
    return store, parts, (bool(entry.extra["compiled_wins"]) if entry is not None else None)


def eager_won_before(gm: torch.fx.GraphModule, example_inputs, settings) -> bool:
    """At compile time: whether this graph, with these inputs, already lost to eager PyTorch (then
    the backend hands Dynamo the graph itself, and nothing is traced, partitioned or loaded)."""
    if _builds_autograd(gm, example_inputs):
        return False
    if lookup(gm, example_inputs, settings)[2] is False:
        counters.bump("graphs_kept_eager")
        return True
    return False


def _builds_autograd(gm: torch.fx.GraphModule, args) -> bool:
    if not torch.is_grad_enabled():
        return False
    tensors = [a for a in args if isinstance(a, torch.Tensor)] + list(gm.parameters())
    return any(t.requires_grad for t in tensors)
