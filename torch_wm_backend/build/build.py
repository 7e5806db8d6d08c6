"""Relax IRModule -> executable: tuned kernels from a MetaSchedule database, default schedules for
the rest (DLight on CUDA, cpu_default.py on LLVM).

The passes are MetaSchedule's ``compile_relax`` order — legalize and fuse as the tuning tasks
were extracted (tune/tasks.py), so the database's keys match; apply the database; schedule what is
left; lower — with the CPU's default schedule added where ``compile_relax`` has none. Untuned
builds take the same path with no database, so they are fused too.
"""
from __future__ import annotations

import tvm
from tvm import relax
from tvm.relax import pipeline as relax_pipeline
from tvm.s_tir import dlight as dl

from .cpu_default import schedule_unscheduled


def build(mod: tvm.IRModule, target: tvm.target.Target, database=None) -> relax.VMExecutable:
    from tvm.relax.transform import MetaScheduleApplyDatabase

    from ..tune.tasks import prepare

    gpu = relax_pipeline.BackendDispatcher.is_gpu_target(target)
    if gpu:
        fallback = dl.ApplyDefaultSchedule(dl.gpu.Matmul(), dl.gpu.GEMV(), dl.gpu.Reduction(),
                                           dl.gpu.GeneralReduction(), dl.gpu.Fallback())
    else:
        fallback = schedule_unscheduled(target)

    @tvm.transform.module_pass(opt_level=3, name="TvmWmBuild")
    def pipeline(mod: tvm.IRModule, _ctx) -> tvm.IRModule:
        mod = tvm.transform.Sequential(relax_pipeline.library_dispatch_passes(target))(mod)
        mod = prepare(mod)
        if database is not None:
            mod = MetaScheduleApplyDatabase()(mod)
        mod = fallback(mod)
        return tvm.transform.Sequential(_lower_passes(target)
                                        + relax_pipeline.finalize_passes(target))(mod)

    with target, tvm.transform.PassContext(opt_level=3):
        if database is None:
            return relax.build(mod, target=target, relax_pipeline=pipeline)
        with database:
            return relax.build(mod, target=target, relax_pipeline=pipeline)


def _lower_passes(target) -> list:
    try:
        return relax_pipeline.dataflow_lower_passes(target)
    except (ValueError, AttributeError):  # TVM 0.27 has none for plain LLVM: compile_relax's list
        return [relax.transform.RewriteDataflowReshape(), relax.transform.ToNonDataflow(),
                relax.transform.RemovePurityChecking(), relax.transform.CallTIRRewrite()]
