"""MetaSchedule tasks of one Relax module: legalized and fused first, as compile_relax does, so the
database keys the tuner writes are the ones the build reads."""
from __future__ import annotations

import os

import tvm
import tvm_ffi
from tvm import relax
from tvm.s_tir import meta_schedule as ms

from .defaults import is_default


def prepare(mod: tvm.IRModule) -> tvm.IRModule:
    passes = [
        relax.transform.LegalizeOps(),
        relax.transform.AnnotateTIROpPattern(),
        relax.transform.FoldConstant(),
        relax.transform.FuseOps(),
        relax.transform.FuseTIR(),
    ]
    return tvm.transform.Sequential(passes)(mod)


def extract(mod: tvm.IRModule, target) -> list:
    """Tuning tasks, one per distinct fused kernel; ``weight`` counts how often each one runs."""
    return list(ms.relax_integration.extract_tasks(prepare(mod), target))


def merged(mods: list, target) -> tuple[list, list]:
    """Tasks of several modules, one per distinct workload (structural hash), with weights summed:
    a convolution in ten subgraphs is tuned once, weighted by the ten times it runs."""
    tasks, weights, index = [], [], {}
    for mod in mods:
        for task in extract(mod, target):
            func = task.dispatched[0]
            key = tvm_ffi.structural_hash(func)
            same = [i for i in index.get(key, []) if tvm_ffi.structural_equal(tasks[i].dispatched[0], func)]
            if same:
                weights[same[0]] += float(task.weight)
                continue
            index.setdefault(key, []).append(len(tasks))
            tasks.append(task)
            weights.append(float(task.weight))
    return tasks, weights


# Per database (its folder, or the in-memory object): "hash target trials" of searched tasks.
_SEARCHED: dict = {}
SEARCHED = "searched.txt"  # beside an on-disk records database: the same, for every process


def _mark(task, trials: int) -> str:
    return f"{tvm_ffi.structural_hash(task.dispatched[0]):x} {task.target} {trials}"


def _searched(database, records_dir) -> set:
    return _SEARCHED.setdefault(records_dir or ("memory", id(database)), set())


def mark_tuned(tasks: list, trials: int, database, records_dir=None) -> None:
    """Remember that these tasks were searched with this budget — a space smaller than the budget
    never fills it, and must not be searched again by every subgraph or process."""
    marks = [_mark(t, trials) for t in tasks]
    _searched(database, records_dir).update(marks)
    if records_dir is not None:
        with open(os.path.join(records_dir, SEARCHED), "a") as f:
            f.write("".join(m + "\n" for m in marks))


def _load_marks(database, records_dir) -> set:
    marks = _searched(database, records_dir)
    path = os.path.join(records_dir, SEARCHED) if records_dir is not None else None
    if path and os.path.exists(path):
        with open(path) as f:
            marks.update(line.strip() for line in f)
    return marks


def untuned(tasks: list, database, trials: int, records_dir=None) -> list:
    """Indices of the tasks the database does not already hold ``trials`` measured records for —
    tuned in another subgraph, another model or another process (deduplicated by structural hash)."""
    marks = _load_marks(database, records_dir)
    todo, records = [], None
    for i, task in enumerate(tasks):
        func = task.dispatched[0]
        if task.mod.attrs is not None and task.mod.attrs.get("tirx.is_scheduled", False):
            continue  # scheduled already (a library kernel): nothing to search
        if _mark(task, trials) in marks:
            continue  # searched already; its space may hold fewer valid candidates than trials
        if database.has_workload(func):
            workload = database.commit_workload(func)
            records = database.get_all_tuning_records() if records is None else records
            # failed candidates count too: they were measured, and a rerun would fail them again;
            # the default kernel's record does not: it is not one of the search's trials
            if sum(1 for r in records
                   if r.workload.same_as(workload) and not is_default(r)) >= trials:
                continue
        todo.append(i)
    return todo


def flops(task) -> float:
    from tvm.s_tir.analysis import estimate_tir_flops

    try:
        return float(estimate_tir_flops(task.dispatched[0]))
    except Exception:  # some kernels (pure data movement) have no countable FLOPs
        return 0.0
