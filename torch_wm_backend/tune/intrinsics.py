"""MetaSchedule's TuneContext without importing every tensor intrinsic TVM has.

TuneContext's constructor imports ``tvm.s_tir.tensor_intrin``, a package that registers the
intrinsics of every backend at once (CUDA, ARM, x86, ROCm, Hexagon, RISC-V): 32 s of the first
tuning in a process on this 2-core machine, 17 s of it CUDA's, 0.3 s x86's. A search tensorizes
with its own target's intrinsics only, so while a context is built the package is a placeholder
that holds just those modules. The placeholder is taken out again at once: a later
``import tvm.s_tir.tensor_intrin`` anywhere in the process imports the whole package as usual (the
modules loaded here stay loaded and are not registered twice).
"""
from __future__ import annotations

import contextlib
import importlib
import importlib.util
import platform
import sys
import threading
import types

PACKAGE = "tvm.s_tir.tensor_intrin"
_lock = threading.Lock()
_path = []  # the package's folder, found once


def modules_for(target) -> tuple | None:
    """The intrinsic modules a search for ``target`` can use; None: all of them."""
    from tvm.target import Target

    target = target if isinstance(target, Target) else Target(target)
    kind = target.kind.name
    if kind == "llvm":
        arch = (str(target.attrs.get("mtriple", "")) or platform.machine()).lower()
        return ("arm_cpu",) if arch.startswith(("aarch64", "arm")) else ("x86",)
    if kind == "cuda":
        return ("cuda",)
    return None


@contextlib.contextmanager
def only_for(target):
    """Within this block, ``import tvm.s_tir.tensor_intrin`` loads ``target``'s intrinsics only."""
    wanted = modules_for(target)
    if wanted is None or PACKAGE in sys.modules:
        yield
        return
    with _lock:
        if not _path:
            _path.extend(importlib.util.find_spec(PACKAGE).submodule_search_locations)
        placeholder = types.ModuleType(PACKAGE)
        placeholder.__path__ = list(_path)
        sys.modules[PACKAGE] = placeholder
        try:
            for name in wanted:
                setattr(placeholder, name, importlib.import_module(f"{PACKAGE}.{name}"))
            yield
        finally:
            if sys.modules.get(PACKAGE) is placeholder:
                del sys.modules[PACKAGE]


def tune_context(**kwargs):
    """``ms.TuneContext(**kwargs)``, importing only its target's intrinsics."""
    from tvm.s_tir import meta_schedule as ms

    with only_for(kwargs["target"]):
        return ms.TuneContext(**kwargs)
