"""The function a TVM module calls for a matrix product PyTorch computes (lower/products.py):
``torch.matmul`` on the module's tensors, shared through DLPack, into the output TVM allocated.
Registered once, when the runtime is imported: a module loaded from the disk cache finds it by name."""
from __future__ import annotations

import torch
import tvm_ffi

MATMUL = "tvm_wm.torch_matmul"


def _matmul(a, b, out) -> None:
    torch.matmul(torch.from_dlpack(a), torch.from_dlpack(b), out=torch.from_dlpack(out))


tvm_ffi.register_global_func(MATMUL, _matmul, override=True)
