"""A MetaSchedule builder whose worker processes live across batches.

MetaSchedule's LocalBuilder starts new workers for every batch, and each new worker's first build
imports ``tvm.s_tir.tensor_intrin`` (measured here: ~20 s on 2 cores, against ~0.03 s for the build
itself). With a few trials per batch that import was nearly all of the tuning time. We keep the
workers, recycle them every few batches (LocalBuilder restarts them over a memory leak), and import
the intrinsics only for modules that were tensorized.
"""
from __future__ import annotations

import os
import tempfile

from tvm.ir.utils import derived_object
from tvm.s_tir import meta_schedule as ms
from tvm.s_tir.meta_schedule.builder import BuilderResult
from tvm.support.popen_pool import PopenPoolExecutor, StatusKind

RECYCLE_AFTER = 16  # batches


def _build(mod, target, params):
    from tvm.driver import build as tvm_build
    from tvm.s_tir.transform import RemoveWeightLayoutRewriteBlock

    if "auto_tensorize" in mod.script(show_meta=False):
        import tvm.s_tir.tensor_intrin  # noqa: F401  registers the intrinsics tensorize refers to
    mod = RemoveWeightLayoutRewriteBlock(skip_tensor_rewrite=True)(mod)
    return tvm_build(mod, target=target)


def _export(rt_mod) -> str:
    from tvm.support.tar import tar

    path = os.path.join(tempfile.mkdtemp(prefix="tvm_wm_cand_"), "mod." + tar.output_format)
    rt_mod.export_library(path, fcompile=tar)
    return path


def _work(mod, target) -> str:
    return _export(_build(mod, target, None))


@derived_object
class PersistentBuilder(ms.builder.PyBuilder):
    def __init__(self, max_workers: int, timeout_sec: float):
        super().__init__()
        self.max_workers = max_workers
        self.timeout_sec = timeout_sec
        self._pool = None
        self._batches = 0

    def _get_pool(self) -> PopenPoolExecutor:
        if self._pool is None or self._batches >= RECYCLE_AFTER:
            if self._pool is not None:
                self._pool.shutdown()
            self._pool = PopenPoolExecutor(max_workers=self.max_workers, timeout=self.timeout_sec)
            self._batches = 0
        self._batches += 1
        return self._pool

    def build(self, build_inputs):
        results = []
        pool = self._get_pool()
        jobs = [(b.mod, b.target) for b in build_inputs]
        for res in pool.map_with_error_catching(lambda job: _work(*job), jobs):
            if res.status == StatusKind.COMPLETE:
                results.append(BuilderResult(res.value, None))
            elif res.status == StatusKind.TIMEOUT:
                results.append(BuilderResult(None, f"build timed out after {self.timeout_sec} s"))
            else:
                results.append(BuilderResult(None, f"build failed: {res.value}"))
        return results

    def shutdown(self):
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
