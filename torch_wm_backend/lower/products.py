"""Matrix products handed to PyTorch from inside a TVM module (the ``matmul`` option).

On an Intel CPU PyTorch's products (MKL, oneDNN) ran faster than MetaSchedule's tuned ones:
BERT-base's dense layers at 287–299 GFLOP/s against 213–234
(benchmarks/results/kernels_bert_base_packed.md), 87% of the module's time, so its one module lost
to eager PyTorch. Rewritten here, each float32 ``relax.matmul`` of a CPU module becomes a call of a
function ``runtime/products.py`` registers; everything around the products (layer norm,
softmax, residual adds) stays TVM's, fused and tuned, and the module is still one VM call.

A product by a frozen weight (a linear layer's) is MKL's packed GEMM or oneDNN's linear on the
weight packed in that library's own layout: the packing is lifted into the weights' preparation
with their other work (freeze.py), done once per set of weights, and the packed weight replaces the
transposed copy. On BERT-base's three dense shapes, weights streamed from memory as in a model
(benchmarks/results/linear_products.md, 2026-12-06), MKL's packed GEMM took ×0.64–×0.87 the time
of PyTorch's ``F.linear`` and oneDNN's packed linear ×0.72–×0.95. oneDNN's adds a GELU after the
product as it writes the output (``_with_gelu``), so a weight whose product has one keeps oneDNN's
(``_pack_kinds``); both add the bias (``_with_bias``).

Any other product (attention's) is ``torch.matmul`` into the output TVM planned. A product's
operands reach PyTorch as the views they are in PyTorch: the reshapes, transposes and broadcasts
that lead to an operand (attention's heads split and keys transposed) are passed along as steps
PyTorch takes on the tensor before the product, not computed by TVM into copies first. Measured in
BERT-base's module (Intel, 2 cores, 2026-12-05): its head-splitting copies took 2.1 ms a call.

TVM's idle workers spin (300000 rounds) and take the cores from PyTorch's OpenMP threads in
between, unless they sleep as the backend sets them (threads.py): the products pay only then.
"""
from __future__ import annotations

import json
import math

import torch
import tvm
from tvm import relax

from ..runtime.products import LINEAR, LINEAR_BIAS, LINEAR_PACK, MATMUL, MATMUL_BIAS

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


def to_pytorch(mod: tvm.IRModule, num_input: int | None = None) -> tvm.IRModule:
    """``mod`` (Relax operators, before legalization) with its float32 products calling PyTorch.
    ``main``'s parameters from ``num_input`` on are weights: a product by one of them is oneDNN's
    linear on the weight packed with the weights' other preparation (lifted, freeze.py)."""
    packs: dict = {}  # (weight, transposed, rows) -> the packed weight's variable, in main
    weights: list = []  # main's weight parameters

    @relax.expr_functor.mutator
    class Rewrite(relax.PyExprMutator):
        def visit_call_(self, call):
            call = super().visit_call_(call)
            if not _product(call):
                return call
            packed = self.packed(call)
            if packed is not None:
                a, steps = self.viewed(call.args[0])
                return relax.op.call_pure_packed(LINEAR, a, packed, _spec([steps]), ty_args=call.ty)
            operands, steps = zip(*(self.viewed(a) for a in call.args))
            return relax.op.call_dps_packed(MATMUL, relax.Tuple([*operands, _spec(steps)]), call.ty)

        def packed(self, call):
            """The packed weight ``call`` multiplies by (a variable), or None where it is not a
            weight (a 2-D parameter, or its transpose) times rows of a fixed count."""
            b, transposed = call.args[1], False
            bound = self.lookup_binding(b) if isinstance(b, relax.Var) else None
            if bound is not None:
                if not (_is_view(bound) and bound.op.name == "relax.permute_dims"
                        and (bound.attrs.axes is None or [int(x) for x in bound.attrs.axes] == [1, 0])):
                    return None
                b, transposed = bound.args[0], True
            a, w = _static_shape(call.args[0]), _static_shape(b)
            if (not any(b.same_as(x) for x in weights) or a is None or w is None or len(a) < 2
                    or len(w) != 2 or a[-1] != w[1 if transposed else 0]):
                return None
            key = (b, transposed, math.prod(a[:-1]))  # a Var hashes and compares by identity
            if key not in packs:
                packs[key] = self.builder_.emit(relax.op.call_pure_packed(
                    LINEAR_PACK, b, _spec([transposed, key[2]]), ty_args=relax.ObjectType()))
            return packs[key]

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
            packs.clear()
            weights[:] = (f.params[num_input:] if num_input is not None and gv.name_hint == "main"
                          and _PACKS else [])
            rewrite.builder_.update_func(gv, rewrite.visit_expr(f))
    # the views' own kernels, then the products a bias took over, now unused, go; GELUs last
    dce = relax.transform.DeadCodeElimination()
    return _pack_kinds(_with_gelu(dce(_with_bias(dce(rewrite.builder_.get())))))


_PACKS = torch.backends.mkldnn.is_available()


def _spec(steps) -> tvm.ir.StringImm:
    return tvm.ir.StringImm(json.dumps(steps, separators=(",", ":")))


def _with_bias(mod: tvm.IRModule) -> tvm.IRModule:
    """``add(product, bias)``, where the bias is a vector along the product's last axis and
    nothing else reads the product, becomes one call: PyTorch adds the bias in its product. By a
    packed weight always (oneDNN adds it as it writes the output); otherwise (``addmm``) only
    where the sum feeds other PyTorch products (through views): those adds would be TVM kernels
    of their own (BERT-base's query, key and value biases: 36 of 42 µs), while a bias whose sum
    feeds TVM's kernels is fused into them (``addmm`` copies the bias first: 28 µs)."""
    bound: dict = {}  # of the function being folded
    consumers: dict = {}

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
                if call.same_as(add) and _calls(product, LINEAR):
                    a, packed, spec = (self.visit_expr(x) for x in product.args[1:])
                    return relax.op.call_pure_packed(LINEAR_BIAS, a, packed, self.visit_expr(bias),
                                                     spec, ty_args=call.ty)
                if call.same_as(add):
                    a, b, spec = (self.visit_expr(x) for x in product.args[1].fields)
                    return relax.op.call_dps_packed(
                        MATMUL_BIAS, relax.Tuple([a, b, self.visit_expr(bias), spec]), call.ty)
            return super().visit_call_(call)

    fold = Fold(mod)
    for gv, f in mod.functions.items():
        if isinstance(f, relax.Function):
            bound, consumers = _uses(f)
            to_fold[:] = [(value, *pair) for var, value in bound.items()
                          if isinstance(value, relax.Call) and isinstance(value.op, tvm.ir.Op)
                          and value.op.name == "relax.add" and (pair := folded(value)) is not None
                          and (_calls(pair[0], LINEAR) or feeds_products(var))]
            fold.builder_.update_func(gv, fold.visit_expr(f))
    return fold.builder_.get()


_GELU = {"relax.nn.gelu": "none", "relax.nn.gelu_tanh": "tanh"}  # -> oneDNN's GELU algorithm


def _with_gelu(mod: tvm.IRModule) -> tvm.IRModule:
    """``gelu(product)`` by a packed weight (through views, nothing else reading the product)
    becomes the product alone, with oneDNN applying the GELU as it writes the output: a TVM
    kernel less, which read and wrote BERT-base's 128 x 3072 activations once more per layer."""
    found: dict = {}  # the product's call -> (the GELU's call, algorithm), per function

    def product_under(var, bound, consumers):
        while isinstance(var, relax.Var) and len(consumers.get(var, [])) == 1:
            value = bound.get(var)
            if _calls(value, LINEAR) or _calls(value, LINEAR_BIAS):
                return value
            if not _is_view(value):
                return None
            var = value.args[0]
        return None

    @relax.expr_functor.mutator
    class Fuse(relax.PyExprMutator):
        def visit_call_(self, call):
            for product, (gelu, algorithm) in found.items():
                if call.same_as(gelu):
                    return self.visit_expr(call.args[0])  # the product's output is the GELU's
                if call.same_as(product):
                    *args, spec = (self.visit_expr(x) for x in call.args[1:])
                    steps = json.loads(spec.value)
                    return relax.op.call_pure_packed(str(call.args[0].global_symbol), *args,
                                                     _spec([steps[0], "gelu", algorithm]),
                                                     ty_args=call.ty)
            return super().visit_call_(call)

    fuse = Fuse(mod)
    for gv, f in mod.functions.items():
        if isinstance(f, relax.Function):
            bound, consumers = _uses(f)
            found.clear()
            for value in bound.values():
                if (isinstance(value, relax.Call) and isinstance(value.op, tvm.ir.Op)
                        and value.op.name in _GELU):
                    product = product_under(value.args[0], bound, consumers)
                    if product is not None:
                        found[product] = (value, _GELU[value.op.name])
            fuse.builder_.update_func(gv, fuse.visit_expr(f))
    return fuse.builder_.get()


_MKL = torch.backends.mkl.is_available()


def _pack_kinds(mod: tvm.IRModule) -> tvm.IRModule:
    """Whose packed layout each weight takes: MKL's packed GEMM (what Inductor's frozen-weights
    mode calls) took 9–13% less time than oneDNN's linear on BERT-base's shapes
    (benchmarks/results/linear_products.md), but applies no GELU; a weight whose products apply
    one keeps oneDNN's. MKL's packed buffer is larger (×2.2–×4.9 the weight's size on those shapes,
    oneDNN's ×1): BERT-base's prepared weights take 935 MB, 343 MB with oneDNN's alone."""
    if not _MKL:
        return mod
    kinds: dict = {}  # the packed weight's variable -> "mkl" or "onednn"

    @relax.expr_functor.visitor
    class Find(relax.PyExprVisitor):
        def visit_call_(self, call):
            if _calls(call, LINEAR) or _calls(call, LINEAR_BIAS):
                packed, spec = call.args[2], call.args[-1]
                gelu = "gelu" in json.loads(spec.value)[1:]
                kinds[packed] = "onednn" if gelu or kinds.get(packed) == "onednn" else "mkl"
            super().visit_call_(call)

    @relax.expr_functor.mutator
    class Mark(relax.PyExprMutator):
        def visit_var_binding_(self, binding):
            if _calls(binding.value, LINEAR_PACK) and kinds.get(binding.var) == "mkl":
                weight, spec = binding.value.args[1:]
                marked = relax.op.call_pure_packed(LINEAR_PACK, self.visit_expr(weight),
                                                   _spec([*json.loads(spec.value), "mkl"]),
                                                   ty_args=relax.ObjectType())
                self.builder_.emit_normalized(relax.VarBinding(binding.var, self.builder_.normalize(marked)))
                return
            super().visit_var_binding_(binding)

    mark = Mark(mod)
    for gv, f in mod.functions.items():
        if isinstance(f, relax.Function):
            kinds.clear()
            Find().visit_expr(f)
            mark.builder_.update_func(gv, mark.visit_expr(f))
    return mark.builder_.get()


def _uses(f: relax.Function) -> tuple:
    """(variable -> the value bound to it, variable -> the variables bound to calls reading it or
    to an item of it)."""
    bound: dict = {}
    consumers: dict = {}

    @relax.expr_functor.visitor
    class Uses(relax.PyExprVisitor):
        def visit_var_binding_(self, binding):
            bound[binding.var] = binding.value
            if isinstance(binding.value, relax.TupleGetItem):
                if isinstance(binding.value.tuple_value, relax.Var):
                    consumers.setdefault(binding.value.tuple_value, []).append(binding.var)
            elif isinstance(binding.value, relax.Call):
                for arg in binding.value.args:
                    for v in (arg.fields if isinstance(arg, relax.Tuple) else [arg]):
                        if isinstance(v, relax.Var):
                            consumers.setdefault(v, []).append(binding.var)
            super().visit_var_binding_(binding)

    Uses().visit_expr(f)
    return bound, consumers


def _is_view(expr) -> bool:
    return isinstance(expr, relax.Call) and isinstance(expr.op, tvm.ir.Op) and expr.op.name in _VIEWS


def _pytorch_product(expr) -> bool:
    return _calls(expr, MATMUL) or _calls(expr, LINEAR)


def _calls(expr, name: str) -> bool:
    """Whether ``expr`` calls the packed function ``name`` (call_dps_packed or call_pure_packed)."""
    return (isinstance(expr, relax.Call) and isinstance(expr.op, tvm.ir.Op)
            and expr.op.name in ("relax.call_dps_packed", "relax.call_pure_packed")
            and isinstance(expr.args[0], relax.ExternFunc) and str(expr.args[0].global_symbol) == name)


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
