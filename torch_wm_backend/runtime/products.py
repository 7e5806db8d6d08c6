"""The functions a TVM module calls for a matrix product PyTorch computes (lower/products.py):
``torch.matmul`` on the module's tensors, shared through DLPack, into the output TVM allocated.
Each operand comes with its steps to the view PyTorch multiplies (reshape, permute, expand; a JSON
string); ``torch_matmul_bias`` adds a bias vector as well (``addmm``). A product by a frozen
weight is oneDNN's linear on the weight prepacked once, with the weights' other preparation
(``torch_linear_pack`` -> ``torch_linear``/``torch_linear_bias``, which return PyTorch's output).
Registered once, when the runtime is imported: a module loaded from the disk cache finds them by
name."""
from __future__ import annotations

import functools
import json

import torch
import tvm_ffi

MATMUL = "tvm_wm.torch_matmul"
MATMUL_BIAS = "tvm_wm.torch_matmul_bias"
LINEAR_PACK = "tvm_wm.torch_linear_pack"
LINEAR = "tvm_wm.torch_linear"
LINEAR_BIAS = "tvm_wm.torch_linear_bias"


class PackedWeight:
    """A weight in oneDNN's or MKL's own layout (a copy, reordered): opaque to TVM, which only hands
    it from the weights' preparation to the products. ``nbytes``: its memory. An MKL-packed
    linear weight keeps the weight it came from (MKL's product takes both) and its row count."""
    __slots__ = ("tensor", "nbytes", "weight", "rows")

    def __init__(self, packed: torch.Tensor, weight: torch.Tensor | None = None, rows: int = 0):
        self.tensor, self.weight, self.rows = packed, weight, rows
        self.nbytes = packed.numel() * packed.element_size()


def linear_packed(weight: torch.Tensor, rows: int, kind: str = "onednn") -> PackedWeight:
    """A linear layer's weight (out x in) packed for products of ``rows`` rows of input, for
    oneDNN's linear or (``kind`` "mkl") MKL's packed GEMM."""
    if kind == "mkl":
        return PackedWeight(torch.ops.mkl._mkl_reorder_linear_weight(weight, rows), weight, rows)
    return PackedWeight(torch.ops.mkldnn._reorder_linear_weight(weight, rows))


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


def _linear_pack(weight, spec) -> PackedWeight:
    """``spec``: [transposed, rows] or [transposed, rows, "mkl"]. A weight the product takes
    transposed is a linear layer's (out x in), as oneDNN and MKL want it; one it takes as is
    (in x out) is transposed for them."""
    transposed, rows, *kind = _steps(str(spec))
    weight = torch.from_dlpack(weight)
    packed = linear_packed(weight if transposed else weight.t().contiguous(), rows, *kind)
    if packed.weight is not None and not transposed:  # MKL keeps the transposed copy too
        packed.nbytes += packed.weight.numel() * packed.weight.element_size()
    return packed


def _linear(a, packed: PackedWeight, spec) -> torch.Tensor:
    return _linear_bias(a, packed, None, spec)


def _linear_bias(a, packed: PackedWeight, bias, spec) -> torch.Tensor:
    """``spec``: [a's view steps] or [steps, "gelu", algorithm]: oneDNN applies the GELU to the
    output as it writes it."""
    steps, *post = _steps(str(spec))
    a = _view(torch.from_dlpack(a), steps)
    bias = None if bias is None else torch.from_dlpack(bias)
    if packed.weight is not None:  # MKL's packed GEMM (lower/products.py: no GELU then)
        return torch.ops.mkl._mkl_linear(a, packed.tensor, packed.weight, bias, packed.rows)
    attr, algorithm = post if post else ("none", "")
    return torch.ops.mkldnn._linear_pointwise(a, packed.tensor, bias, attr, [], algorithm)


tvm_ffi.register_global_func(MATMUL, _matmul, override=True)
tvm_ffi.register_global_func(MATMUL_BIAS, _matmul_bias, override=True)
tvm_ffi.register_global_func(LINEAR_PACK, _linear_pack, override=True)
tvm_ffi.register_global_func(LINEAR, _linear, override=True)
tvm_ffi.register_global_func(LINEAR_BIAS, _linear_bias, override=True)
