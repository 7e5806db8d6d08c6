"""How a task's candidates are searched: the one home of the search's knobs.

MetaSchedule's evolutionary search by default; with ``screen`` (the world model only: it scores a
trace without building it), world_model/search.py's, which scores ``screen`` mutations per
population member before it builds any.
"""
from __future__ import annotations

from dataclasses import dataclass

from tvm.s_tir import meta_schedule as ms


@dataclass(frozen=True)
class SearchPlan:
    population: int | None = None   # candidates kept per generation; None: scaled to the budget
    generations: int = 4            # rounds of mutation and selection per measured round
    screen: int = 0                 # unbuilt mutations scored per population member (0: MetaSchedule's)


DEFAULT = SearchPlan()


def population(trials: int, plan: SearchPlan = DEFAULT) -> int:
    """The plan's population, or one scaled to the budget: MetaSchedule's default 512 costs minutes
    of CPU per task before the first measurement, which a budget of 8 cannot repay."""
    return plan.population or min(512, max(64, 16 * trials))


def make_search(trials: int, plan: SearchPlan = DEFAULT, cost_model=None):
    """A search strategy for a task tuned ``trials`` times. ``cost_model``: the world model's
    Python object, which a screened plan scores unbuilt traces with."""
    size = population(trials, plan)
    if plan.screen:
        if cost_model is None or not hasattr(cost_model, "predict_traces"):
            raise ValueError("a screened search scores unbuilt traces: it needs the world model")
        from ..world_model.search import ScreenedSearch

        return ScreenedSearch(cost_model, population=size, generations=plan.generations,
                              screen=plan.screen)
    return ms.search_strategy.EvolutionarySearch(
        population_size=size, init_min_unmeasured=min(50, size // 2),
        genetic_num_iters=plan.generations)
