"""MetaSchedule tasks of one Relax module: legalized and fused first, as compile_relax does, so the
database keys the tuner writes are the ones the build reads."""
from __future__ import annotations

import tvm
from tvm import relax
from tvm.s_tir import meta_schedule as ms


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


def untuned(tasks: list, database, trials: int) -> list:
    """The tasks the database does not already hold ``trials`` measured records for — tuned in
    another subgraph, another model or another process (deduplicated by structural hash)."""
    todo = []
    for task in tasks:
        func = task.dispatched[0]
        if task.mod.attrs is not None and task.mod.attrs.get("tirx.is_scheduled", False):
            continue  # scheduled already (a library kernel): nothing to search
        if database.has_workload(func):
            workload = database.commit_workload(func)
            if len(database.get_top_k(workload, trials)) >= trials:
                continue
        todo.append(task)
    return todo


def flops(task) -> float:
    from tvm.s_tir.analysis import estimate_tir_flops

    try:
        return float(estimate_tir_flops(task.dispatched[0]))
    except Exception:  # some kernels (pure data movement) have no countable FLOPs
        return 0.0
