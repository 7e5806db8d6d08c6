"""The ``versions`` key part: everything whose upgrade can change a built artifact."""
from __future__ import annotations

import functools
import hashlib
from pathlib import Path

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "world_model" / "weights"


@functools.lru_cache(maxsize=None)
def versions() -> dict:
    import torch
    import tvm
    import tvm_ffi

    from .. import __version__

    return {"torch": torch.__version__, "tvm": tvm.__version__, "tvm_ffi": tvm_ffi.__version__,
            "torch_wm_backend": __version__, "world_model": weights_hash()}


def weights_hash(directory: Path = WEIGHTS_DIR) -> str:
    """sha256 over the names and bytes of the world model's weight files; "none" without any."""
    files = sorted(p for p in directory.rglob("*") if p.is_file()) if directory.is_dir() else []
    if not files:
        return "none"
    h = hashlib.sha256()
    for p in files:
        h.update(p.relative_to(directory).as_posix().encode() + b"\0" + p.read_bytes())
    return h.hexdigest()[:16]
