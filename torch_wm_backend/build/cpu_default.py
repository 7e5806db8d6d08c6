"""A default schedule for CPU kernels without a tuning record: parallel outer loops, vectorized
inner ones, elementwise producers inlined — MetaSchedule's own rules, with nothing sampled.

TVM applies default schedules (DLight) on GPUs only; on a CPU an unscheduled kernel runs its loop
nest as written, on one thread, however many cores the machine has.
"""
from __future__ import annotations

import logging

import tvm
from tvm.s_tir import meta_schedule as ms

log = logging.getLogger("torch_wm_backend")
MAX_VECTORIZE = 64


def _space(target) -> ms.space_generator.PostOrderApply:
    rules = [
        ms.schedule_rule.AutoInline(  # MetaSchedule's LLVM defaults
            into_producer=False, into_consumer=True, inline_const_tensor=True,
            disallow_if_then_else=True, require_injective=True, require_ordered=True,
            disallow_op=["tirx.exp"]),
        ms.schedule_rule.ParallelizeVectorizeUnroll(
            max_jobs_per_core=16, max_vectorize_extent=MAX_VECTORIZE, unroll_max_steps=[],
            unroll_explicit=True),
    ]
    postprocs = [ms.postproc.DisallowDynamicLoop(), ms.postproc.RewriteParallelVectorizeUnroll()]
    return ms.space_generator.PostOrderApply(sch_rules=rules, postprocs=postprocs, mutator_probs={})


def default_schedule(func: tvm.tirx.PrimFunc, target) -> "tvm.s_tir.Schedule | None":
    """The default schedule of one unscheduled PrimFunc, or None where the rules do not apply."""
    ctx = ms.TuneContext(mod=tvm.IRModule({"main": func}), target=target,
                         space_generator=_space(target), task_name="default")
    spaces = ctx.space_generator.generate_design_space(ctx.mod)
    if len(spaces) != 1:
        return None
    sch = spaces[0]
    for postproc in ctx.space_generator.postprocs:
        if not postproc.apply(sch):
            return None
    return sch


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
