"""The function a TVM module calls for a matrix product PyTorch computes (lower/products.py):
``torch.matmul`` on the module's tensors, shared through DLPack, into the output TVM allocated.
``torch_matmul_views`` takes each operand's steps to the view PyTorch multiplies (lower/products.py):
reshape, permute, expand, as a JSON string; ``torch_matmul_bias`` adds a bias vector as well (``addmm``). Registered once, when the runtime is imported: a module loaded from the disk cache finds it by name."""
from __future__ import annotations

import functools
import json

import torch
import tvm_ffi

MATMUL = "tvm_wm.torch_matmul"
MATMUL_VIEWS = "tvm_wm.torch_matmul_views"
MATMUL_BIAS = "tvm_wm.torch_matmul_bias"


def _matmul(a, b, out) -> None:
    torch.matmul(torch.from_dlpack(a), torch.from_dlpack(b), out=torch.from_dlpack(out))


@functools.lru_cache(maxsize=4096)
def _steps(spec: str) -> list:
    return json.loads(spec)


def _view(t: torch.Tensor, steps: list) -> torch.Tensor:
    for step, dims in steps:
        t = t.reshape(dims) if step == "reshape" else t.permute(dims) if step == "permute" else t.expand(dims)
    return t


def _matmul_views(a, b, spec, out) -> None:
    steps_a, steps_b = _steps(str(spec))
    torch.matmul(_view(torch.from_dlpack(a), steps_a), _view(torch.from_dlpack(b), steps_b),
                 out=torch.from_dlpack(out))


def _matmul_bias(a, b, bias, spec, out) -> None:
    steps_a, steps_b = _steps(str(spec))
    a, b = _view(torch.from_dlpack(a), steps_a), _view(torch.from_dlpack(b), steps_b)
    bias, out = torch.from_dlpack(bias), torch.from_dlpack(out)
    if a.dim() == 2 and b.dim() == 2 and out.dim() == 2:
        torch.addmm(bias, a, b, out=out)
    else:
        torch.matmul(a, b, out=out.view(out.shape))
        out.add_(bias)


tvm_ffi.register_global_func(MATMUL, _matmul, override=True)
tvm_ffi.register_global_func(MATMUL_VIEWS, _matmul_views, override=True)
tvm_ffi.register_global_func(MATMUL_BIAS, _matmul_bias, override=True)
