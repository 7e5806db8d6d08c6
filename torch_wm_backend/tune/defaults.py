"""Measure each task's default kernel once and record it beside the searched ones.

The database's best record is what gets built; the default kernel was never among the candidates,
so a search that found nothing better still replaced it. Measured on MobileNetV2's fused depthwise
convolution at 112x112 (CPU, 64 trials per task; benchmarks/results/default_vs_tuned.md): default
kernel 0.47 ms, best searched candidate 0.88 ms (xgb) and 0.93 ms (wm). The default is what a build
without a record uses (build/cpu_default.py: parallel, vectorized); its trace samples nothing, so
it competes like any candidate but is not one of the search's trials.
CPU targets only: on CUDA an unscheduled kernel has no thread binding and cannot be built.
"""
from __future__ import annotations

import logging

from tvm.s_tir import Schedule
from tvm.s_tir import meta_schedule as ms

log = logging.getLogger("torch_wm_backend")


def is_default(record) -> bool:
    """Whether a tuning record is a default kernel's (a trace that sampled nothing), not a
    searched candidate's."""
    return len(record.trace.decisions) == 0


def searched(records) -> int:
    """How many of one workload's records the search measured: all but the default kernel's own.
    A resumed search may measure the default kernel again — MetaSchedule seeds its population with
    the database's best records and does not skip those measured before — and that is a trial."""
    records = list(records)
    return len(records) - min(1, sum(1 for r in records if is_default(r)))


def _default(mod, target) -> Schedule:
    from ..build.cpu_default import default_schedule

    try:
        sch = default_schedule(mod, target)
    except Exception:  # the rules do not apply: the loop nest as written
        sch = None
    return sch if sch is not None else Schedule(mod)


def _has_default(database, workload) -> bool:
    return any(is_default(r) for r in database.get_top_k(workload, 1 << 16))


def measure_defaults(tasks: list, database, builder, runner) -> int:
    """Build and run the default kernel of each CPU task not measured yet; returns how many were
    recorded. A kernel that fails to build or run is not recorded."""
    todo = []
    for task in tasks:
        if task.target.kind.name != "llvm":
            continue
        mod = task.dispatched[0]
        workload = database.commit_workload(mod)
        if not _has_default(database, workload):
            todo.append((task, mod, workload, _default(mod, task.target)))
    if not todo:
        return 0
    built = builder.build([ms.builder.BuilderInput(sch.mod, task.target) for task, _, _, sch in todo])
    runs, ready = [], []
    for (task, mod, workload, sch), b in zip(todo, built):
        if b.error_msg is None:
            args = ms.arg_info.ArgInfo.from_entry_func(mod, remove_preproc=True)
            runs.append(ms.runner.RunnerInput(b.artifact_path, "cpu", args))
            ready.append((task, workload, sch, args))
    recorded = 0
    for (task, workload, sch, args), future in zip(ready, runner.run(runs)):
        result = future.result()
        if result.error_msg is None and result.run_secs:
            database.commit_tuning_record(ms.database.TuningRecord(
                sch.trace, workload, result.run_secs, task.target, args))
            recorded += 1
    log.debug("recorded the default kernel of %d of %d tasks", recorded, len(todo))
    return recorded
