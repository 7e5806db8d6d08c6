"""Matrix products handed to PyTorch from inside a TVM module (the ``matmul`` option).

On an Intel CPU PyTorch's products (MKL) ran faster than MetaSchedule's tuned ones: BERT-base's
dense layers at 287–299 GFLOP/s against 213–234 (benchmarks/results/kernels_bert_base_packed.md),
87% of the module's time, so its one module lost to eager PyTorch. Rewritten here, each float32
``relax.matmul`` of a CPU module becomes a call of the function ``runtime/products.py`` registers
(``torch.matmul`` into the output TVM planned); everything around the products (bias, GELU, layer
norm, softmax, residual adds) stays TVM's, fused and tuned, and the module is still one VM call.

TVM's idle workers spin (300000 rounds) and take the cores from PyTorch's OpenMP threads in
between, unless they sleep as the backend sets them (threads.py): the products pay only then.
"""
from __future__ import annotations

import tvm
from tvm import relax

from ..runtime.products import MATMUL


def has_products(mod: tvm.IRModule) -> bool:
    """Whether ``mod`` has a float32 matrix product ``to_pytorch`` would hand over."""
    found = []

    @relax.expr_functor.visitor
    class Find(relax.PyExprVisitor):
        def visit_call_(self, call):
            if _product(call):
                found.append(call)
            super().visit_call_(call)

    for f in mod.functions.values():
        if isinstance(f, relax.Function):
            Find().visit_expr(f)
    return bool(found)


def to_pytorch(mod: tvm.IRModule) -> tvm.IRModule:
    """``mod`` (Relax operators, before legalization) with its float32 products calling PyTorch."""

    @relax.expr_functor.mutator
    class Rewrite(relax.PyExprMutator):
        def visit_call_(self, call):
            call = super().visit_call_(call)
            if _product(call):
                return relax.op.call_dps_packed(MATMUL, relax.Tuple(list(call.args)), call.ty)
            return call

    rewrite = Rewrite(mod)
    for gv, f in mod.functions.items():
        if isinstance(f, relax.Function):
            rewrite.builder_.update_func(gv, rewrite.visit_expr(f))
    return rewrite.builder_.get()


def _product(call) -> bool:
    return (isinstance(call.op, tvm.ir.Op) and call.op.name == "relax.matmul"
            and getattr(call.ty, "dtype", None) == "float32"
            and all(getattr(a.ty, "dtype", None) == "float32" for a in call.args))
