"""What a user sees while tuning: a progress bar with ETA, the time budget, and a table at the end."""
from __future__ import annotations

import logging
from typing import Callable

from tqdm.auto import tqdm
from tvm.s_tir import meta_schedule as ms
from tvm.ir.utils import derived_object

from .. import counters

log = logging.getLogger("torch_wm_backend")


@derived_object
class Progress(ms.measure_callback.PyMeasureCallback):
    """Counts measured trials, moves the bar, and ends every task once the time budget is spent
    (``spent``, e.g. ``Budget.spent``), remembering which ones it cut short."""

    def __init__(self, total: int, names: list, spent: Callable[[], bool] | None, desc: str):
        super().__init__()
        self.names = names
        self.spent = spent
        self.measured = 0
        self.stopped = set()  # ids of the tasks the budget ended before their search did
        self.best = {}  # task id -> best seconds
        self.bar = tqdm(total=total, desc=desc, unit="trial", leave=False, dynamic_ncols=True)

    def start(self, names: list) -> None:
        """A new search begins, over these tasks (the task ids it reports index them)."""
        self.names, self.stopped, self.best = names, set(), {}

    def apply(self, task_scheduler, task_id, measure_candidates, builder_results, runner_results):
        n = len(measure_candidates)
        self.measured += n
        counters.bump("trials_measured", n)
        failed = sum(1 for b, r in zip(builder_results, runner_results)
                     if b.error_msg or r.error_msg or not r.run_secs)
        counters.bump("trials_failed", failed)
        for result in runner_results:
            if result.run_secs:
                secs = sum(float(s) for s in result.run_secs) / len(result.run_secs)
                self.best[task_id] = min(self.best.get(task_id, secs), secs)
        if n:  # the scheduler also reports rounds with nothing measured (a spent design space):
            # redrawing for those filled CI logs with hundreds of identical lines
            self.bar.set_postfix_str(self.names[task_id][:40], refresh=False)
            self.bar.update(n)
        if self.spent is not None and self.spent():
            for i, task in enumerate(task_scheduler.tasks_):
                if not task.is_terminated:  # terminating one twice fails MetaSchedule's check
                    task_scheduler.terminate_task(i)
                    self.stopped.add(i)

    def close(self):
        self.bar.close()


def rows(tasks: list, weights: list, database) -> list:
    """Per task: kernel, MFLOP, calls (its weight), best measured latency in µs, GFLOP/s and search
    trials in ``database`` (None: latency and trials unknown)."""
    from . import defaults
    from .tasks import flops

    out = []
    for task, weight in zip(tasks, weights):
        func, best, trials = task.dispatched[0], None, 0
        if database is not None and database.has_workload(func):
            records = database.get_top_k(database.commit_workload(func), 1 << 16)
            trials = defaults.searched(records)
            secs = [float(s) for r in records[:1] for s in (r.run_secs or [])]
            best = sum(secs) / len(secs) if secs else None
        work = flops(task)
        out.append({"kernel": task.task_name[:48], "mflop": work / 1e6, "calls": weight,
                    "best_us": best * 1e6 if best else None,
                    "gflops": work / best / 1e9 if best and work else None, "trials": trials})
    return out


def table(rows: list) -> str:
    lines = ["| # | kernel | MFLOP | calls | best µs | GFLOP/s | trials |",
             "|---|---|---|---|---|---|---|"]
    for i, r in enumerate(rows):
        latency = f"{r['best_us']:.1f}" if r["best_us"] else "-"
        gflops = f"{r['gflops']:.1f}" if r["gflops"] else "-"
        lines.append(f"| {i} | {r['kernel']} | {r['mflop']:.2f} | {r['calls']:g} | {latency} | "
                     f"{gflops} | {r['trials']} |")
    return "\n".join(lines)
