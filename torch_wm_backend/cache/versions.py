"""The ``versions`` key part: everything whose upgrade can change a built artifact."""
from __future__ import annotations

import functools
import hashlib
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent.parent
WEIGHTS_DIR = PACKAGE_DIR / "world_model" / "weights"
SOURCE_SUFFIXES = (".py", ".cc")


@functools.lru_cache(maxsize=None)
def versions() -> dict:
    import torch
    import tvm
    import tvm_ffi

    return {"torch": torch.__version__, "tvm": tvm.__version__, "tvm_ffi": tvm_ffi.__version__,
            "torch_wm_backend": source_hash(), "world_model": weights_hash()}


def source_hash(directory: Path = PACKAGE_DIR) -> str:
    """sha256 over the package's own source files: any change to the code that builds, checks or
    chooses kernels makes new keys (a version number is not bumped for every such change)."""
    h = hashlib.sha256()
    for p in sorted(p for p in directory.rglob("*") if p.suffix in SOURCE_SUFFIXES and p.is_file()):
        h.update(p.relative_to(directory).as_posix().encode() + b"\0" + p.read_bytes())
    return h.hexdigest()[:16]


def weights_hash(directory: Path = WEIGHTS_DIR) -> str:
    """sha256 over the names and bytes of the world model's weight files; "none" without any."""
    files = sorted(p for p in directory.rglob("*") if p.is_file()) if directory.is_dir() else []
    if not files:
        return "none"
    h = hashlib.sha256()
    for p in files:
        h.update(p.relative_to(directory).as_posix().encode() + b"\0" + p.read_bytes())
    return h.hexdigest()[:16]
