"""Relax IRModule -> executable: tuned kernels from a MetaSchedule database, default schedules
(DLight on CUDA, the default CPU pipeline on LLVM) for the rest."""
from __future__ import annotations

import tvm
from tvm import relax


def build(mod: tvm.IRModule, target: tvm.target.Target, database=None) -> relax.VMExecutable:
    if database is None:
        return tvm.compile(mod, target=target)
    from tvm.s_tir import meta_schedule as ms

    with target, tvm.transform.PassContext(opt_level=3):
        return ms.relax_integration.compile_relax(database, mod, target, params=None)
