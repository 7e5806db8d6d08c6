"""MetaSchedule tasks of one Relax module: legalized and fused first, as compile_relax does, so the
database keys the tuner writes are the ones the build reads."""
from __future__ import annotations

import tvm
import tvm_ffi
from tvm import relax
from tvm.s_tir import meta_schedule as ms

from ..cache import records
from .defaults import searched


def prepare(mod: tvm.IRModule) -> tvm.IRModule:
    """Legalized and fused. Where the weights' layouts are tuning's to choose (the
    ``weight_layouts`` option, lower/freeze.py), each kernel's weight parameters are marked
    layout-free, so MetaSchedule's RewriteLayout may give them the layout its schedule reads best;
    the build changes them so once, when they are prepared (lower/freeze.py, ``prepack``)."""
    from ..lower.freeze import chooses_weight_layouts
    from ..lower.legalize import legalize

    passes = [
        legalize(),
        relax.transform.AnnotateTIROpPattern(),
        relax.transform.FoldConstant(),
        relax.transform.FuseOps(),
        relax.transform.FuseTIR(),
    ]
    if chooses_weight_layouts(mod):
        passes.append(relax.transform.AttachAttrLayoutFreeBuffers())
    return tvm.transform.Sequential(passes)(mod)


def extract(mod: tvm.IRModule, target) -> list:
    """Tuning tasks, one per distinct fused kernel; ``weight`` counts how often each one runs.
    Kernels only the frozen weights' preparation calls (``main_transform_params``, run once per
    weight change, lower/freeze.py) are not tasks: a trial there buys nothing per call. Nor, on a
    CPU, are row softmaxes: the build gives them their own schedule (build/cpu_softmax.py)."""
    from ..build.cpu_softmax import is_row_softmax

    tasks = ms.relax_integration.extract_tasks(per_call(prepare(mod)), target)
    if target.kind.name != "llvm":
        return list(tasks)
    return [t for t in tasks if not is_row_softmax(t.dispatched[0]["main"])]


def per_call(mod: tvm.IRModule) -> tvm.IRModule:
    """``mod`` without its weight-preparation function and the kernels only it calls."""
    lifted = [gv for gv in mod.functions if gv.name_hint.endswith("transform_params")]
    if not lifted:
        return mod
    kept = tvm.IRModule({gv: f for gv, f in mod.functions.items() if gv not in lifted},
                        attrs=mod.attrs)
    return relax.transform.DeadCodeElimination(["main"])(kept)


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


# Tasks whose search finished, as "hash target trials": MetaSchedule's search ended by itself,
# having measured its trials or exhausted a space smaller than them (which a rerun would not fill).
# A search cut short (Ctrl-C, a crash, the time budget) is not marked: it resumes. An on-disk
# database keeps its marks in a file beside it (cache/records.py), for every process; an in-memory
# one's are here, each entry holding its database: an id is unique only while its object lives, and
# TVM's objects take neither weak references nor attributes.
_IN_MEMORY: dict = {}  # id(database) -> (database, {"hash target": trials})


def _key(task) -> str:
    return f"{tvm_ffi.structural_hash(task.dispatched[0]):x} {task.target}"


def _marks(database, records_dir) -> dict:
    if records_dir is not None:
        marks = {}
        for line in records.read_finished(records_dir):
            key, _, trials = line.rpartition(" ")
            if trials.isdigit():
                marks[key] = max(marks.get(key, 0), int(trials))
        return marks
    held = _IN_MEMORY.get(id(database))
    if held is None or held[0] is not database:
        held = _IN_MEMORY[id(database)] = (database, {})
    return held[1]


def mark_finished(tasks: list, trials: int, database, records_dir=None) -> None:
    """Remember that the search of these tasks, with a budget of ``trials``, ended by itself."""
    if records_dir is not None:
        records.append_finished(records_dir, [f"{_key(t)} {trials}" for t in tasks])
        return
    marks = _marks(database, None)
    for task in tasks:
        marks[_key(task)] = max(marks.get(_key(task), 0), trials)


def measured(tasks: list, database) -> list:
    """Measured candidates per task in ``database``. Failed ones count: they were measured, and a
    rerun would fail them again; the default kernel's record does not: it is not a search trial
    (``defaults.searched``)."""
    counts, every = [], None
    for task in tasks:
        func = task.dispatched[0]
        if not database.has_workload(func):
            counts.append(0)
            continue
        workload = database.commit_workload(func)
        every = database.get_all_tuning_records() if every is None else every
        counts.append(searched(r for r in every if r.workload.same_as(workload)))
    return counts


def untuned(tasks: list, database, trials: int, records_dir=None) -> dict:
    """{index: trials still missing} of the tasks to search: those whose search has neither
    finished with this budget (or a larger one) nor left ``trials`` measured records — in another
    subgraph, model or process (deduplicated by structural hash). A search cut short resumes with
    the trials it lacks; a finished one, given a larger budget, the difference."""
    marks = _marks(database, records_dir)
    done = [marks.get(_key(task), 0) for task in tasks]
    searchable = [i for i, task in enumerate(tasks) if not _scheduled(task) and done[i] < trials]
    counts = measured([tasks[i] for i in searchable], database)
    # a search that finished with a smaller budget gets the difference: a pooled search gives a
    # heavy task up to POOL_CAP times its share, records that must not count as the larger budget
    # spent (BERT-base's matrix products held 129 records after 32 trials per task)
    lacks = {i: trials - done[i] if done[i] else trials - n for i, n in zip(searchable, counts)}
    return {i: n for i, n in lacks.items() if n > 0}


def _scheduled(task) -> bool:
    """Scheduled already (a library kernel): nothing to search."""
    return task.mod.attrs is not None and bool(task.mod.attrs.get("tirx.is_scheduled", False))


def flops(task) -> float:
    from tvm.s_tir.analysis import estimate_tir_flops

    try:
        return float(estimate_tir_flops(task.dispatched[0]))
    except Exception:  # some kernels (pure data movement) have no countable FLOPs
        return 0.0
