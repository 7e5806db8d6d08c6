"""The functions a TVM module calls for a matrix product PyTorch computes (lower/products.py):
``torch.matmul`` on the module's tensors, shared through DLPack, into the output TVM allocated.
Each operand comes with its steps to the view PyTorch multiplies (reshape, permute, expand; a JSON
string); ``torch_matmul_bias`` adds a bias vector as well (``addmm``). Registered once, when the
runtime is imported: a module loaded from the disk cache finds them by name."""
from __future__ import annotations

import functools
import json

import torch
import tvm_ffi

MATMUL = "tvm_wm.torch_matmul"
MATMUL_BIAS = "tvm_wm.torch_matmul_bias"


@functools.lru_cache(maxsize=4096)
def _steps(spec: str) -> list:
    return json.loads(spec)


def _view(t: torch.Tensor, steps: list) -> torch.Tensor:
    for step, dims in steps:
        t = t.reshape(dims) if step == "reshape" else t.permute(dims) if step == "permute" else t.expand(dims)
    return t


def _operands(a, b, spec) -> tuple:
    steps_a, steps_b = _steps(str(spec))
    return _view(torch.from_dlpack(a), steps_a), _view(torch.from_dlpack(b), steps_b)


def _matmul(a, b, spec, out) -> None:
    torch.matmul(*_operands(a, b, spec), out=torch.from_dlpack(out))


def _matmul_bias(a, b, bias, spec, out) -> None:
    a, b = _operands(a, b, spec)
    bias, out = torch.from_dlpack(bias), torch.from_dlpack(out)
    if a.dim() == 2 and b.dim() == 2:
        torch.addmm(bias, a, b, out=out)
    else:
        torch.matmul(a, b, out=out)
        out.add_(bias)


tvm_ffi.register_global_func(MATMUL, _matmul, override=True)
tvm_ffi.register_global_func(MATMUL_BIAS, _matmul_bias, override=True)
