"""A default schedule for CPU kernels without a tuning record: parallel outer loops, vectorized
inner ones — MetaSchedule's own rule and postprocessor, with nothing sampled.

TVM applies default schedules (DLight) on GPUs only; on a CPU an unscheduled kernel runs its loop
nest as written, on one thread, however many cores the machine has. A fused kernel's elementwise
steps are inlined first (DLight's ``try_inline``): as legalized, each step (a frozen batch norm's
subtract, divide, multiply, add; the ReLU) is a loop nest writing a buffer of its own, five passes
over memory where one does. A row softmax (lower/legalize.py marks it) gets its own schedule
instead (cpu_softmax.py).
"""
from __future__ import annotations

import logging

import tvm
from tvm.s_tir import meta_schedule as ms

log = logging.getLogger("torch_wm_backend")
MAX_VECTORIZE = 64
JOBS_PER_CORE = 16


def default_schedule(func: tvm.tirx.PrimFunc, target) -> "tvm.s_tir.Schedule | None":
    """The default schedule of one unscheduled PrimFunc, or None where the rule does not apply:
    the root annotated as MetaSchedule's ParallelizeVectorizeUnroll rule does (up to 16 jobs per
    core, vectors up to 64 lanes), then its RewriteParallelVectorizeUnroll postprocessor. (Not
    through a TuneContext: making one imports TVM's tensor intrinsics, 30 s and more here.) A row
    softmax gets cpu_softmax.py's schedule, or this one where that fails."""
    from tvm import s_tir
    from tvm.s_tir.dlight import normalize_prim_func, try_inline

    from .cpu_softmax import is_row_softmax, schedule_row_softmax

    if is_row_softmax(func):
        try:
            return schedule_row_softmax(func)
        except Exception as err:  # the generic schedule below: slower, still right
            log.debug("no row-softmax schedule (%s)", err)
    sch = s_tir.Schedule(func)
    blocks = normalize_prim_func(sch)
    if blocks:  # a fused kernel's elementwise steps computed in one loop nest, not one each
        try_inline(sch, [b for b in blocks if not b.is_reduction()])
    root = sch.get_sblock("root")
    cores = int(target.attrs.get("num-cores", 1) or 1)
    sch.annotate(root, "meta_schedule.parallel", JOBS_PER_CORE * cores)
    sch.annotate(root, "meta_schedule.vectorize", MAX_VECTORIZE)
    return sch if ms.postproc.RewriteParallelVectorizeUnroll().apply(sch) else None


def schedule_unscheduled(target):
    """A module pass: every PrimFunc without ``tirx.is_scheduled`` gets its default schedule."""

    @tvm.transform.module_pass(opt_level=0, name="CpuDefaultSchedule")
    def apply(mod: tvm.IRModule, _ctx) -> tvm.IRModule:
        updates = {}
        for gv, func in mod.functions.items():
            if not isinstance(func, tvm.tirx.PrimFunc) or _scheduled(func):
                continue
            try:
                sch = default_schedule(func.with_attr("global_symbol", "main"), target)
            except Exception as err:  # the kernel keeps its loop nest: slower, still right
                log.debug("no default schedule for %s (%s)", gv.name_hint, err)
                continue
            if sch is not None:
                scheduled = sch.mod["main"].with_attr("tirx.is_scheduled", True)
                attrs = func.attrs
                updates[gv] = scheduled.with_attr("global_symbol", attrs["global_symbol"]) \
                    if attrs is not None and "global_symbol" in attrs else scheduled.without_attr("global_symbol")
        for gv, func in updates.items():
            mod[gv] = func
        return mod

    return apply


def _scheduled(func) -> bool:
    return func.attrs is not None and bool(func.attrs.get("tirx.is_scheduled", False))
