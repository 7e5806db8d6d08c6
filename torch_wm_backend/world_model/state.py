"""The unscheduled PrimFunc of a task -> state feature vector (the encoder's input), once per task.

Also gives the loop extents of every block, which the tokenizer uses as operand context, and the pooled
PerStoreFeature embedding that the dynamics loss asks the transition model to predict.
"""
from __future__ import annotations

import math
import re
import threading
from dataclasses import dataclass

import numpy as np

from .. import counters

PSF_DIM = 164
POOLED_DIM = 2 * PSF_DIM + 1          # mean, max, log #stores
_OPS = ("conv", "matmul", "dense", "pool", "softmax", "norm", "mean", "sum", "max", "exp",
        "tanh", "erf", "add", "multiply", "divide", "transpose", "reshape", "relu", "pad", "take")
_DTYPES = ("float32", "float16", "bfloat16", "int")
MISC_DIM = 8 + len(_OPS) + len(_DTYPES)
STATE_DIM = POOLED_DIM + MISC_DIM

@dataclass(frozen=True)
class TaskInfo:
    key: str
    state: np.ndarray          # float32 [STATE_DIM]
    blocks: dict               # block name -> {"extents", "reduce", "is_reduction"}


def pool_features(feats: np.ndarray) -> np.ndarray:
    """PerStoreFeature rows [n, 164] -> one vector [POOLED_DIM]."""
    out = np.zeros(POOLED_DIM, np.float32)
    if feats.size:
        out[:PSF_DIM] = feats.mean(0)
        out[PSF_DIM:2 * PSF_DIM] = feats.max(0)
        out[-1] = math.log2(1 + feats.shape[0])
    return out


def extract_pooled(sch, target) -> np.ndarray:
    """Pooled PerStoreFeature of a (possibly partially) scheduled program."""
    from tvm.s_tir import meta_schedule as ms

    from ..tune.intrinsics import tune_context

    counters.bump("wm_feature_extractions")
    ctx = tune_context(mod=sch.mod, target=target, num_threads=1)
    cand = ms.MeasureCandidate(sch, [])
    feats = ms.feature_extractor.PerStoreFeature().extract_from(ctx, [cand])[0].numpy()
    return pool_features(feats)


def _children(stmt):
    for attr in ("seq",):
        if hasattr(stmt, attr):
            return list(getattr(stmt, attr))
    out = []
    for attr in ("body", "then_case", "else_case", "block"):
        v = getattr(stmt, attr, None)
        if v is not None:
            out.append(v)
    return out


def block_nests(func) -> dict:
    """Block name -> loop extents, reduction flags of the enclosing loops, is_reduction."""
    from tvm import s_tir, tirx

    blocks: dict = {}

    def walk(stmt, loops):
        if isinstance(stmt, tirx.For):
            loops = loops + [stmt]
        elif isinstance(stmt, s_tir.SBlockRealize):
            blk = stmt.block
            red_vars = set()
            for iv, val in zip(blk.iter_vars, stmt.iter_values):
                if int(iv.iter_type) != 0:
                    red_vars |= set(re.findall(r"\w+", str(val)))
            exts = [int(lp.extent) if hasattr(lp.extent, "value") else 0 for lp in loops]
            if blk.name_hint != "root":
                blocks[blk.name_hint] = {
                    "extents": exts,
                    "reduce": [1.0 if lp.loop_var.name in red_vars else 0.0 for lp in loops],
                    "is_reduction": any(int(iv.iter_type) != 0 for iv in blk.iter_vars),
                }
        for child in _children(stmt):
            walk(child, loops)

    walk(func.body, [])
    return blocks


def _misc(func, blocks: dict) -> np.ndarray:
    v = np.zeros(MISC_DIM, np.float32)
    heavy = max(blocks.values(), key=lambda b: math.prod(e or 1 for e in b["extents"]), default=None)
    v[0] = math.log2(1 + len(blocks))
    v[1] = math.log2(1 + sum(b["is_reduction"] for b in blocks.values()))
    if heavy is not None:
        sp = math.prod(e or 1 for e, r in zip(heavy["extents"], heavy["reduce"]) if not r)
        rd = math.prod(e or 1 for e, r in zip(heavy["extents"], heavy["reduce"]) if r)
        v[2], v[3], v[4] = math.log2(sp), math.log2(rd), len(heavy["extents"]) / 8
        v[5] = sum(1 for e in heavy["extents"] if e and e & (e - 1) == 0) / max(len(heavy["extents"]), 1)
    v[6] = max((len(b["extents"]) for b in blocks.values()), default=0) / 8
    v[7] = math.log2(1 + sum(math.prod(e or 1 for e in b["extents"]) for b in blocks.values()))
    names = " ".join(blocks).lower()
    for i, op in enumerate(_OPS):
        v[8 + i] = float(op in names)
    dtypes = func.script()
    for i, dt in enumerate(_DTYPES):
        v[8 + len(_OPS) + i] = float(dt in dtypes)
    return v


_CACHE: dict = {}
_LOCK = threading.Lock()


def func_of(mod):
    """The PrimFunc of a task module (IRModule with one function, or a PrimFunc)."""
    from tvm import tirx

    if isinstance(mod, tirx.PrimFunc):
        return mod
    funcs = [f for _, f in mod.functions.items() if isinstance(f, tirx.PrimFunc)]
    return funcs[0]


def workload_hash(mod) -> str:
    """A task's name in the data: the structural hash of its PrimFunc (48 bits, hex)."""
    import tvm_ffi

    return f"{tvm_ffi.structural_hash(func_of(mod)) & 0xFFFFFFFFFFFF:x}"


def task_info(mod, target) -> TaskInfo:
    """State features of the task's unscheduled program, cached by structural hash and target kind."""
    import tvm
    from tvm.s_tir import Schedule

    func = func_of(mod)
    key = f"{workload_hash(func)}:{target.kind.name}"
    with _LOCK:
        hit = _CACHE.get(key)
    if hit is not None:
        counters.bump("wm_task_info_hits")
        return hit
    counters.bump("wm_task_info_misses")
    blocks = block_nests(func)
    pooled = extract_pooled(Schedule(tvm.IRModule({"main": func})), target)
    info = TaskInfo(key, np.concatenate([pooled, _misc(func, blocks)]).astype(np.float32), blocks)
    with _LOCK:
        _CACHE[key] = info
    return info


def clear_cache() -> None:
    with _LOCK:
        _CACHE.clear()
