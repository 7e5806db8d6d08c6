"""One graph's choice between TVM and PyTorch: looked up in the cache, or made once and stored.

One entry per graph decision, keyed like a kernel (cache/keys.py) by the graph the user's program
hands over: Dynamo's graph for inference (so a warm start that chose PyTorch skips aot_autograd's
tracing altogether), each ATen graph for training. A decision made on a busy machine is used but
not stored.
"""
from __future__ import annotations

import logging
from typing import Optional

from .. import counters
from .choice import Choice, choose

log = logging.getLogger("torch_wm_backend")
FORMAT = "selection-2"  # races compare medians (race.py); choices made by fastest rounds are not reused


class Selection:
    def __init__(self, name: str, store, key_parts: Optional[dict], timer):
        self.name, self.store, self.timer = name, store, timer
        self.parts = {**key_parts, "format": FORMAT} if key_parts is not None else None
        self._cached: Optional[Choice] = None
        self.extra: dict = {}  # what the cached entry holds beside the choice
        self._looked_up = False

    def cached(self) -> Optional[Choice]:
        """The stored choice (counted as a cache hit or miss), or None."""
        if not self._looked_up:
            self._looked_up = True
            entry = None
            if self.store is not None and self.parts is not None:
                try:
                    entry = self.store.get(self.parts)
                except Exception as err:  # an unreadable cache: decide as if it were empty
                    log.debug("%s: no cached choice (%s)", self.name, err)
            if entry is not None:
                extra = self.extra = dict(entry.extra)
                self._cached = Choice(dict(extra["use_tvm"]), bool(extra["wins"]), None,
                                      bool(extra.get("whole", False)))
        return self._cached

    def decide(self, subgraphs, run_mode, candidate_for, reference, device, whole=None,
               direct: Optional[dict] = None) -> Choice:
        """``direct``: how a warm start runs the whole module without tracing, kept with a choice
        of it (select/graphs.py)."""
        choice = choose(subgraphs, run_mode, candidate_for, reference, device, self.timer, whole)
        t, w = choice.timing, choice.whole_timing
        if w is not None:
            log.info("%s: one module in TVM: %.3f ms; PyTorch: %.3f ms -> lost%s", self.name,
                     w.candidate_s * 1e3, w.reference_s * 1e3,
                     " (machine busy: not cached)" if w.busy else "")
        if t is not None:
            log.info("%s: %s in TVM: %.3f ms; PyTorch: %.3f ms -> %s%s", self.name,
                     "one module" if choice.whole else
                     f"{sum(choice.use_tvm.values())} of {len(choice.use_tvm)} subgraphs", t.candidate_s * 1e3,
                     t.reference_s * 1e3, "TVM" if choice.wins else "PyTorch",
                     " (machine busy: not cached)" if t.busy else "")
        busy = any(x is not None and x.busy for x in (t, w))
        if self.store is not None and self.parts is not None and not busy:
            extra = {"use_tvm": choice.use_tvm, "wins": choice.wins, "whole": choice.whole}
            if direct is not None and choice.wins and choice.whole:
                extra["direct"] = direct
            if t is not None:
                extra.update(candidate_ms=t.candidate_s * 1e3, reference_ms=t.reference_s * 1e3)
            if w is not None:
                extra.update(one_module_ms=w.candidate_s * 1e3, one_module_reference_ms=w.reference_s * 1e3)
            try:
                self.store.put(self.parts, {}, extra)
            except Exception as err:
                log.debug("%s: the choice was not stored (%s)", self.name, err)
        return choice

    @staticmethod
    def count(choice: Choice, subgraphs: int, whole_graph: bool) -> None:
        kept = sum(choice.use_tvm.values()) if choice.wins else 0
        if choice.wins and choice.whole:
            kept = subgraphs  # every subgraph, in one module
        counters.bump("context_kept_tvm", kept)
        counters.bump("context_kept_eager", subgraphs - kept)
        if whole_graph:
            counters.bump("graphs_kept_compiled" if choice.wins else "graphs_kept_eager")
            if choice.wins and choice.whole:
                counters.bump("graphs_one_module")
