"""Evolutionary search that spends the world model's cheapness: mutations scored before they are built.

MetaSchedule's evolutionary search replays every mutated trace into a program and runs the
postprocessors on it before its cost model sees it; the replay, not the cost model, is most of a
round's search. The world model scores a trace from its instructions and decisions alone, so a
round here mutates ``screen`` children per population member, scores them unbuilt, keeps the best
``population`` of parents and children, for ``generations`` generations, then builds only the
best (replay + postprocessors), scores those again as built and picks the round's candidates from
them, ``eps_greedy`` of them random samples as in MetaSchedule. A round starts from the last
round's population (unbuilt traces cost nothing to keep) with a quarter of it fresh random
programs, where MetaSchedule samples its whole population anew each round.
"""
from __future__ import annotations

import numpy as np
import tvm
from tvm.ir.utils import derived_object
from tvm.s_tir import Schedule
from tvm.s_tir import meta_schedule as ms
from tvm.s_tir.meta_schedule.search_strategy import PySearchStrategy
from tvm.s_tir.schedule import Trace

from .. import counters
from . import trace_reader

_MUTATE = "s_tir.meta_schedule.MutatorApply"   # Mutator.apply with our seed, not the device's
_BUILD_FACTOR = 2   # traces built per candidate measured: built ones are scored again


@derived_object
class ScreenedSearch(PySearchStrategy):
    """A MetaSchedule search strategy for the world model (``cost_model``: its Python object, whose
    ``predict_traces`` scores unbuilt traces)."""

    def __init__(self, cost_model, population: int = 512, generations: int = 4, screen: int = 8,
                 eps_greedy: float = 0.05, init_measured_ratio: float = 0.2):
        super().__init__()
        self.cost_model = cost_model
        self.population, self.generations, self.screen = population, generations, screen
        self.eps_greedy, self.init_measured_ratio = eps_greedy, init_measured_ratio
        self.context = None

    # -- PySearchStrategy ---------------------------------------------------------------------
    def _initialize_with_tune_context(self, context) -> None:
        self.context = context
        self.postprocs = list(context.space_generator.postprocs)
        probs = dict(context.space_generator.mutator_probs)
        self.mutators = list(probs)
        p = np.array([float(probs[m]) for m in self.mutators])
        self.mutator_p = p / p.sum() if p.sum() > 0 else p
        seed = int(context.rand_state)
        self.rng = np.random.default_rng(seed if seed >= 0 else 0)
        self.mutate = tvm.get_global_func(_MUTATE)

    def pre_tuning(self, max_trials, num_trials_per_iter, design_spaces, database=None,
                   cost_model=None) -> None:
        self.max_trials, self.per_iter = int(max_trials), int(num_trials_per_iter)
        self.spaces = [s.trace for s in design_spaces]
        self.database = database
        self.workload = database.commit_workload(self.context.mod) if database is not None else None
        self.done = 0
        # keys of the traces measured (a resumed task's too) or picked
        self.seen: set = set(trace_reader.keys(self._measured_traces(1 << 30)))
        self.carry: list = []    # the last round's population, unbuilt

    def post_tuning(self) -> None:
        self.spaces, self.database, self.workload, self.carry = [], None, None, []

    def generate_measure_candidates(self):
        if self.done >= self.max_trials:
            return None
        n = min(self.per_iter, self.max_trials - self.done)
        measured = self._measured_traces(int(self.population * self.init_measured_ratio))
        fresh = self.population - len(measured) - len(self.carry)
        samples = self._sample(max(fresh, self.population // 4, n))
        if not samples and not measured and not self.carry:
            return None
        population = self._evolve([s.trace for s in samples] + measured + self.carry)   # (key, trace)
        picks = self._build_best(population, n - int(round(n * self.eps_greedy)))
        keys = set(trace_reader.keys([s.trace for s in picks]))
        for s, key in zip(samples, trace_reader.keys([s.trace for s in samples])):
            if len(picks) >= n:
                break
            if key not in self.seen and key not in keys:   # eps-greedy: random samples
                picks.append(s)
                keys.add(key)
        self.seen |= keys
        self.carry = [t for k, t in population if k not in self.seen][:self.population]
        if not picks:
            return None
        return [ms.MeasureCandidate(s, ms.arg_info.ArgInfo.from_entry_func(s.mod, True))
                for s in picks]

    def notify_runner_results(self, measure_candidates, results) -> None:
        self.done += len(measure_candidates)

    def clone(self):
        return ScreenedSearch(self.cost_model, self.population, self.generations, self.screen,
                              self.eps_greedy, self.init_measured_ratio)

    # -- the search ---------------------------------------------------------------------------
    def _seed(self) -> int:
        return int(self.rng.integers(1, 2**31 - 1))

    def _measured_traces(self, k: int) -> list:
        if self.database is None or k <= 0:
            return []
        return [r.trace for r in self.database.get_top_k(self.workload, k)]

    def _build(self, trace, fresh: bool = False):
        """The program of ``trace`` (new decisions if ``fresh``) after the postprocessors, or None."""
        sch = Schedule(self.context.mod, seed=self._seed(), error_render_level="none")
        try:
            Trace(trace.insts, {} if fresh else trace.decisions).apply_to_schedule(
                sch, remove_postproc=True)
            counters.bump("wm_search_built")
            if all(p.apply(sch) for p in self.postprocs):
                return sch
        except Exception:  # noqa: BLE001 - a trace that does not replay is no candidate
            pass
        return None

    def _sample(self, count: int) -> list:
        """Random programs of the design spaces (MetaSchedule's initial population)."""
        out, fails = [], 0
        while len(out) < count and fails < max(16, count) and self.spaces:
            sch = self._build(self.spaces[int(self.rng.integers(len(self.spaces)))], fresh=True)
            if sch is None:
                fails += 1
            else:
                out.append(sch)
        return out

    def _score(self, traces: list) -> np.ndarray:
        counters.bump("wm_search_scored", len(traces))
        return np.asarray(self.cost_model.predict_traces(self.context, traces), dtype="float64")

    def _evolve(self, traces: list) -> list:
        """(key, trace) pairs ranked best first after ``generations`` rounds of unbuilt mutation and
        selection."""
        keys = trace_reader.keys(traces)
        pool = dict(zip(keys, traces))
        scores = dict(zip(pool, self._score(list(pool.values()))))
        for _ in range(self.generations):
            if not self.mutators:
                break
            ranked = sorted(scores, key=scores.get, reverse=True)[:self.population]
            w = np.array([scores[k] for k in ranked]) + 1e-9
            parents = self.rng.choice(len(ranked), size=len(ranked) * self.screen, p=w / w.sum())
            children = []
            for i in parents:
                m = self.mutators[int(self.rng.choice(len(self.mutators), p=self.mutator_p))]
                try:
                    child = self.mutate(m, pool[ranked[i]], self._seed())
                except Exception:  # noqa: BLE001 - a mutator that replays an unbuilt trace whose
                    child = None   # postprocessing instructions no longer fit it: no child
                if child is not None:
                    children.append(child)
            new = {}
            for key, child in zip(trace_reader.keys(children), children):
                if key not in pool and key not in new:
                    new[key] = child
            if new:
                scores.update(zip(new, self._score(list(new.values()))))
                pool.update(new)
            keep = sorted(scores, key=scores.get, reverse=True)[:self.population]
            pool = {k: pool[k] for k in keep}
            scores = {k: scores[k] for k in keep}
        return [(k, pool[k]) for k in sorted(scores, key=scores.get, reverse=True)]

    def _build_best(self, ranked: list, n: int) -> list:
        """Build the best unmeasured traces of ``ranked`` ((key, trace) pairs) in order until
        ``_BUILD_FACTOR * n`` programs; the ``n`` the model scores best once built."""
        built, keys = [], set()
        for key, trace in ranked:
            if len(built) >= _BUILD_FACTOR * n or n <= 0:
                break
            if key in self.seen:
                continue
            sch = self._build(trace)
            if sch is None:
                continue
            (bkey,) = trace_reader.keys([sch.trace])
            if bkey in self.seen or bkey in keys:
                continue
            keys.add(bkey)
            built.append(sch)
        if not built:
            return []
        order = np.argsort(-self._score([s.trace for s in built]), kind="stable")
        return [built[i] for i in order[:n]]
