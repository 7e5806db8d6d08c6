"""Matrix products handed to PyTorch from inside a TVM module (the ``matmul`` option).

On an Intel CPU PyTorch's products (MKL) ran faster than MetaSchedule's tuned ones: BERT-base's
dense layers at 287–299 GFLOP/s against 213–234 (benchmarks/results/kernels_bert_base_packed.md),
87% of the module's time, so its one module lost to eager PyTorch. Rewritten here, each float32
``relax.matmul`` of a CPU module becomes a call of the function ``runtime/products.py`` registers
(``torch.matmul`` into the output TVM planned); everything around the products (GELU, layer norm,
softmax, residual adds, most biases) stays TVM's, fused and tuned, and the module is still one VM
call.

A product's operands reach PyTorch as the views they are in PyTorch: the reshapes, transposes and
broadcasts that lead to an operand (attention's heads split and keys transposed) are passed along
as steps PyTorch takes on the tensor before the product, not computed by TVM into copies first.
Measured in BERT-base's module (Intel, 2 cores, 2026-12-05): its head-splitting copies took 2.1 ms
a call. A weight's transpose stays TVM's, prepared once with the frozen weights: MKL's products ran
up to 10% faster on the transposed copy than on the transposed view (3072 -> 768: 1,626 µs
against 1,785).

TVM's idle workers spin (300000 rounds) and take the cores from PyTorch's OpenMP threads in
between, unless they sleep as the backend sets them (threads.py): the products pay only then.
"""
from __future__ import annotations

import json

import tvm
from tvm import relax

from ..runtime.products import MATMUL, MATMUL_BIAS

# Relax operators PyTorch takes as views of their operand: operator -> the step's name there
_VIEWS = {"relax.reshape": "reshape", "relax.permute_dims": "permute", "relax.broadcast_to": "expand"}


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
            if not _product(call):
                return call
            operands, steps = zip(*(self.viewed(a) for a in call.args))
            spec = tvm.ir.StringImm(json.dumps(steps, separators=(",", ":")))
            return relax.op.call_dps_packed(MATMUL, relax.Tuple([*operands, spec]), call.ty)

        def viewed(self, operand):
            """(the tensor ``operand`` is a view of, the steps from it to ``operand``)."""
            original, steps = operand, []
            while isinstance(operand, relax.Var):
                bound = self.lookup_binding(operand)
                if not _is_view(bound):
                    break
                shape, source = _static_shape(operand), _static_shape(bound.args[0])
                if shape is None or source is None:
                    break
                step = _VIEWS[bound.op.name]
                if step == "permute":
                    axes = bound.attrs.axes
                    dims = [int(a) for a in axes] if axes is not None else list(range(len(source)))[::-1]
                else:
                    dims = shape
                steps.append([step, dims])
                operand = bound.args[0]
            if self.lookup_binding(operand) is None:  # a parameter: a weight's transpose is
                return original, []  # prepared once (freeze.py) and NN products ran faster
            return operand, steps[::-1]

    rewrite = Rewrite(mod)
    for gv, f in mod.functions.items():
        if isinstance(f, relax.Function):
            rewrite.builder_.update_func(gv, rewrite.visit_expr(f))
    # the views' own kernels, then the products a bias took over, now unused, go
    dce = relax.transform.DeadCodeElimination()
    return dce(_with_bias(dce(rewrite.builder_.get())))


def _with_bias(mod: tvm.IRModule) -> tvm.IRModule:
    """``add(product, bias)``, where the bias is a vector along the product's last axis, nothing
    else reads the product and the sum only feeds other PyTorch products (through views),
    becomes one call: PyTorch adds the bias in its product (``addmm``). Those adds would be TVM
    kernels of their own (BERT-base's query, key and value biases: 36 of 42 µs); a bias whose sum
    feeds TVM's kernels stays TVM's, fused into them (``addmm`` copies the bias first: 28 µs)."""
    bound: dict = {}  # of the function being folded
    consumers: dict = {}

    @relax.expr_functor.visitor
    class Uses(relax.PyExprVisitor):
        def visit_var_binding_(self, binding):
            bound[binding.var] = binding.value
            if isinstance(binding.value, relax.Call):
                for arg in binding.value.args:
                    for v in (arg.fields if isinstance(arg, relax.Tuple) else [arg]):
                        if isinstance(v, relax.Var):
                            consumers.setdefault(v, []).append(binding.var)
            super().visit_var_binding_(binding)

    def feeds_products(var) -> bool:
        users = consumers.get(var, [])
        return bool(users) and all(
            _pytorch_product(bound.get(u)) or (_is_view(bound.get(u)) and feeds_products(u))
            for u in users)

    def folded(call):
        """(product's call, bias) where this add is folded, else None."""
        for product, bias in (call.args, call.args[::-1]):
            value = bound.get(product) if isinstance(product, relax.Var) else None
            if (_pytorch_product(value) and len(consumers.get(product, [])) == 1
                    and _bias_of(bias, call)):
                return value, bias
        return None

    to_fold: list = []  # (add, product, bias), found before the rewrite

    @relax.expr_functor.mutator
    class Fold(relax.PyExprMutator):
        def visit_call_(self, call):
            for add, product, bias in to_fold:
                if call.same_as(add):
                    a, b, spec = (self.visit_expr(x) for x in product.args[1].fields)
                    return relax.op.call_dps_packed(
                        MATMUL_BIAS, relax.Tuple([a, b, self.visit_expr(bias), spec]), call.ty)
            return super().visit_call_(call)

    fold = Fold(mod)
    for gv, f in mod.functions.items():
        if isinstance(f, relax.Function):
            bound.clear()
            consumers.clear()
            Uses().visit_expr(f)
            to_fold[:] = [(value, *pair) for var, value in bound.items()
                          if isinstance(value, relax.Call) and isinstance(value.op, tvm.ir.Op)
                          and value.op.name == "relax.add" and feeds_products(var)
                          and (pair := folded(value)) is not None]
            fold.builder_.update_func(gv, fold.visit_expr(f))
    return fold.builder_.get()


def _is_view(expr) -> bool:
    return isinstance(expr, relax.Call) and isinstance(expr.op, tvm.ir.Op) and expr.op.name in _VIEWS


def _pytorch_product(expr) -> bool:
    return (isinstance(expr, relax.Call) and isinstance(expr.op, tvm.ir.Op)
            and expr.op.name == "relax.call_dps_packed"
            and str(expr.args[0].global_symbol) == MATMUL)


def _bias_of(bias, add) -> bool:
    """Whether ``bias`` is a float32 vector along ``add``'s last axis (its shape ``add``'s)."""
    shape, out = _static_shape(bias), _static_shape(add)
    return (shape is not None and out is not None and len(shape) == 1 and shape[0] == out[-1]
            and getattr(bias.ty, "dtype", None) == "float32")


def _static_shape(expr):
    shape = getattr(getattr(expr, "ty", None), "shape", None)
    values = getattr(shape, "values", None)
    if values is None or not all(isinstance(v, tvm.tirx.IntImm) for v in values):
        return None
    return [int(v) for v in values]


def _product(call) -> bool:
    return (isinstance(call.op, tvm.ir.Op) and call.op.name == "relax.matmul"
            and getattr(call.ty, "dtype", None) == "float32"
            and all(getattr(a.ty, "dtype", None) == "float32" for a in call.args))
