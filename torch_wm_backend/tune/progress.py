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


def table(tasks: list, weights: list, flops: list, best: dict, trials: dict) -> str:
    rows = ["| # | task | MFLOP | weight | best latency (us) | GFLOP/s | trials |",
            "|---|---|---|---|---|---|---|"]
    for i, task in enumerate(tasks):
        secs = best.get(i)
        gflops = f"{flops[i] / secs / 1e9:.1f}" if secs and flops[i] else "-"
        latency = f"{secs * 1e6:.1f}" if secs else "-"
        rows.append(f"| {i} | {task.task_name[:48]} | {flops[i] / 1e6:.2f} | {weights[i]:g} | "
                    f"{latency} | {gflops} | {trials.get(i, 0)} |")
    return "\n".join(rows)
