"""Relax IRModule -> executable: tuned kernels from a MetaSchedule database, default schedules for
the rest (DLight on CUDA, cpu_default.py on LLVM; row softmaxes: cpu_softmax.py), CUDA graphs where
the shapes are static.

The passes are MetaSchedule's ``compile_relax`` order — legalize and fuse as the tuning tasks
were extracted (tune/tasks.py), so the database's keys match; apply the database; schedule what is
left; lower — with the CPU's default schedule added where ``compile_relax`` has none. Untuned
builds take the same path with no database, so they are fused too.
"""
from __future__ import annotations

import contextlib

import tvm
from tvm import relax
from tvm.relax import pipeline as relax_pipeline
from tvm.s_tir import dlight as dl

from .. import counters
from .cpu_default import schedule_unscheduled


def build(mod: tvm.IRModule, target: tvm.target.Target, database=None) -> relax.VMExecutable:
    cuda_graph = uses_cuda_graph(mod, target)
    with _context(target, database, cuda_graph):
        executable = relax.build(mod, target=target, relax_pipeline=_pipeline(target, database))
    if cuda_graph and "vm.builtin.cuda_graph.run_or_capture" in executable.as_text():
        counters.bump("cuda_graph_modules")
    return executable


def lower(mod: tvm.IRModule, target: tvm.target.Target, database=None) -> tvm.IRModule:
    """What ``build`` hands to code generation: the module after every pass (no compiler needed,
    so a CUDA build can be inspected on a machine without CUDA)."""
    with _context(target, database, uses_cuda_graph(mod, target)):
        return _pipeline(target, database)(mod)


def uses_cuda_graph(mod: tvm.IRModule, target: tvm.target.Target) -> bool:
    """CUDA graphs for a GPU module whose ``main`` has static shapes. TVM's RewriteCUDAGraph (in
    the CUDA finalize passes, off unless ``relax.backend.use_cuda_graph``) captures the launches that
    read only memory TVM planned or weights past ``num_input`` once per VM, and replays them; the
    kernels that read a call's inputs stay plain launches, so new input memory is read. Off where a
    shape is symbolic (one capture per shape is not what a dynamic-shape graph wants)."""
    if not relax_pipeline.BackendDispatcher.is_gpu_target(target):
        return False
    main = mod["main"]
    return all(not relax.analysis.definable_tir_vars_in_type(p.ty) for p in main.params)


def _context(target, database, cuda_graph: bool):
    config = {"relax.backend.use_cuda_graph": cuda_graph}
    stack = contextlib.ExitStack()
    stack.enter_context(target)
    stack.enter_context(tvm.transform.PassContext(opt_level=3, config=config))
    if database is not None:
        stack.enter_context(database)
    return stack


def _pipeline(target, database):
    from tvm.relax.transform import MetaScheduleApplyDatabase

    from ..lower.freeze import prepack
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
            mod = prepack(MetaScheduleApplyDatabase()(mod))
        mod = fallback(mod)
        return tvm.transform.Sequential(_lower_passes(target)
                                        + relax_pipeline.finalize_passes(target))(mod)

    return pipeline


def _lower_passes(target) -> list:
    try:
        return relax_pipeline.dataflow_lower_passes(target)
    except (ValueError, AttributeError):  # TVM 0.27 has none for plain LLVM: compile_relax's list
        return [relax.transform.RewriteDataflowReshape(), relax.transform.ToNonDataflow(),
                relax.transform.RemovePurityChecking(), relax.transform.CallTIRRewrite()]
