"""Target -> hardware feature vector, so one model can rank schedules for several machines."""
from __future__ import annotations

import math
import os

import numpy as np

HW_DIM = 16

# Streaming multiprocessors by CUDA arch; the target does not carry it.
_SM_COUNT = {"sm_70": 80, "sm_75": 40, "sm_80": 108, "sm_86": 84, "sm_87": 16, "sm_89": 128,
             "sm_90": 132, "sm_90a": 132, "sm_100": 148, "sm_120": 170}
_SIMD_BITS = (("avx512", 512), ("skylake-avx512", 512), ("sapphirerapids", 512), ("icelake", 512),
              ("cascadelake", 512), ("cooperlake", 512), ("znver4", 512), ("znver5", 512),
              ("avx2", 256), ("haswell", 256), ("broadwell", 256), ("skylake", 256), ("znver", 256),
              ("alderlake", 256), ("neon", 128), ("aarch64", 128), ("armv8", 128), ("apple", 128))


def _attr(target, name, default=None):
    try:
        v = target.attrs[name]
    except (KeyError, IndexError, AttributeError):
        return default
    return v if v is not None else default


def _host_cache_kib() -> list[float]:
    """L1d, L2, L3 sizes of this machine in KiB from sysfs (zeros where unknown)."""
    out = {1: 0.0, 2: 0.0, 3: 0.0}
    base = "/sys/devices/system/cpu/cpu0/cache"
    try:
        for idx in os.listdir(base):
            d = os.path.join(base, idx)
            level = int(open(os.path.join(d, "level")).read())
            kind = open(os.path.join(d, "type")).read().strip()
            size = open(os.path.join(d, "size")).read().strip()
            if kind == "Instruction" or level not in out:
                continue
            mult = {"K": 1, "M": 1024, "G": 1024 * 1024}.get(size[-1], 1 / 1024)
            out[level] = float(size.rstrip("KMG")) * mult
    except (OSError, ValueError):
        pass
    return [out[1], out[2], out[3]]


def _simd_bits(mcpu: str, mattr: str) -> int:
    text = f"{mcpu} {mattr}".lower()
    for key, bits in _SIMD_BITS:
        if key in text:
            return bits
    return 128


def hardware_features(target, threads: int | None = None) -> np.ndarray:
    """Fixed-length vector: kind, parallelism, vector width, memory sizes, GPU geometry. On a CPU,
    ``threads`` is the count TVM's kernels run on (default: the backend's, threads.count()), given
    as log2(threads / cores): 0 where they use every core, so weights trained before the slot
    existed read it as they were trained."""
    v = np.zeros(HW_DIM, np.float32)
    kind = target.kind.name
    if kind == "cuda" or kind in ("rocm", "vulkan", "metal", "opencl"):
        arch = str(_attr(target, "arch", "sm_80"))
        digits = "".join(ch for ch in arch if ch.isdigit()) or "80"
        v[1] = 1.0
        v[2] = math.log2(_SM_COUNT.get(arch, 108))
        v[6] = math.log2(int(_attr(target, "max_threads_per_block", 1024)))
        v[7] = math.log2(int(_attr(target, "max_shared_memory_per_block", 49152)))
        v[8] = math.log2(int(_attr(target, "thread_warp_size", 32)))
        v[9] = int(digits[:-1] or 0) / 10
        v[10] = int(digits[-1]) / 10
        v[11] = math.log2(int(_attr(target, "registers_per_block", 65536)))
        return v
    mcpu = str(_attr(target, "mcpu", ""))
    mattr = " ".join(str(a) for a in (_attr(target, "mattr", []) or []))
    v[0] = 1.0
    cores = int(_attr(target, "num-cores", 0) or os.cpu_count() or 1)
    v[2] = math.log2(max(cores, 1))
    if threads is None:
        from .. import threads as thread_count

        threads = thread_count.count()
    v[6] = math.log2(max(threads, 1) / max(cores, 1))
    v[3] = math.log2(_simd_bits(mcpu, mattr))
    try:
        from tvm.target import codegen

        is_host = mcpu in ("", codegen.llvm_get_system_cpu())
    except Exception:  # noqa: BLE001 - any failure means "not known to be this host"
        is_host = False
    if is_host:
        l1, l2, l3 = _host_cache_kib()
        v[4], v[5], v[12] = (math.log2(1 + x) for x in (l1, l2, l3))
    v[13] = float("aarch64" in str(_attr(target, "mtriple", "")) or "arm" in mcpu)
    v[14] = float("znver" in mcpu)
    v[15] = float(any(k in mcpu for k in ("lake", "well", "rapids", "skylake")))
    return v
