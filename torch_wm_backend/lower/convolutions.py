"""Convolutions handed to oneDNN from inside a channels-last TVM module (the ``matmul`` option's
"pytorch": PyTorch's products, a convolution being one).

A 2-D convolution by a frozen weight becomes a call of oneDNN's convolution (PyTorch's
``mkldnn._convolution_pointwise``, runtime/convolutions.py) on the weight packed in oneDNN's own
layout. What follows the convolution and reads nothing but it and the weights is folded in: a
bias, an inference batch norm (its scale folded into the weight, its shift into the bias, both
computed from the weights), then a residual add of another activation and a ReLU or a clip
(ReLU6), which oneDNN applies as it writes the output. The folding and the packing depend on the
weights alone, so TVM's ``LiftTransformParams`` lifts them into the weights' preparation
(freeze.py): done once per set of weights. The module stays one VM call; TVM keeps the kernels
around the convolutions (the input's transpose, pooling, adds oneDNN does not take).

Only channels-last modules (lower/layout.py) are rewritten: oneDNN reads the NHWC activations TVM
planned as they are, with no reorder per call.
"""
from __future__ import annotations

import tvm
from tvm import relax

from ..runtime.convolutions import CONV, CONV_PACK
from .products import _spec, _static_shape, _uses

# activations oneDNN applies after the convolution: a ReLU, or a clip as ReLU6 (hardtanh 0..6)
_RELU = "relax.nn.relu"
_CLIP = "relax.clip"


def to_onednn(mod: tvm.IRModule, num_input: int, keep=None) -> tvm.IRModule:
    """``mod`` (channels-last, before legalization) with its float32 2-D convolutions by weights
    (``main``'s parameters from ``num_input`` on) calling oneDNN, with what follows them folded.
    ``keep(geometry) -> bool``, if given, picks the convolutions oneDNN computes (``geometry``:
    NHWC data shape, OIHW weight shape, strides, groups); the others stay TVM's."""
    if "main" not in [gv.name_hint for gv in mod.functions]:
        return mod
    main = mod["main"]
    weights = list(main.params[num_input:])
    bound, consumers = _uses(main)
    derived = _weight_derived(weights, bound)
    chains = {}  # the chain's last binding's value -> the chain
    taken: set = set()  # residual adds a chain took (two branches meet at one: it is one's)
    for var, value in bound.items():
        if _eligible(value, weights, bound) and (keep is None or keep(_geometry(value, bound))):
            chain = _chain(var, value, bound, consumers, derived, taken)
            chains[chain["end"]] = chain
    if not chains:
        return mod

    @relax.expr_functor.mutator
    class Rewrite(relax.PyExprMutator):
        def visit_call_(self, call):
            chain = next((c for end, c in chains.items() if call.same_as(end)), None)
            return self.fused(chain, call.ty) if chain else super().visit_call_(call)

        def visit_tuple_getitem_(self, item):
            chain = next((c for end, c in chains.items() if item.same_as(end)), None)
            return self.fused(chain, item.ty) if chain else super().visit_tuple_getitem_(item)

        def fused(self, chain, ty):
            conv = chain["conv"]
            emit = self.builder_.emit
            weight = bound[conv.args[1]].args[0]  # OIHW, under ConvertLayout's transpose to HWIO
            channels = _static_shape(weight)[0]
            bias = None
            if chain["bias"] is not None:
                bias = emit(relax.op.reshape(self.visit_expr(chain["bias"]), [channels]))
            bn = chain["bn"]
            if bn is not None:  # y = (conv + bias - mean) * gamma / sqrt(var + eps) + beta
                gamma, beta, mean, var = (self.visit_expr(a) for a in bn.args[1:5])
                scale = emit(relax.op.rsqrt(relax.op.add(var, relax.const(bn.attrs.epsilon, "float32"))))
                if bn.attrs.scale:
                    scale = emit(relax.op.multiply(scale, gamma))
                weight = emit(relax.op.multiply(weight, relax.op.reshape(scale, [channels, 1, 1, 1])))
                shift = relax.op.negative(mean) if bias is None else relax.op.subtract(bias, mean)
                bias = emit(relax.op.multiply(shift, scale))
                if bn.attrs.center:
                    bias = emit(relax.op.add(bias, beta))
            x = self.visit_expr(conv.args[0])
            n, h, w, c = _static_shape(x)
            a = conv.attrs
            spec = {"padding": [int(a.padding[0]), int(a.padding[1])],
                    "stride": [int(s) for s in a.strides], "dilation": [int(d) for d in a.dilation],
                    "groups": int(a.groups), "input": [n, c, h, w]}
            packed = emit(relax.op.call_pure_packed(CONV_PACK, weight, _spec(spec),
                                                    ty_args=relax.ObjectType()))
            args = [x, packed]
            if bias is not None:
                args.append(bias)
            if chain["other"] is not None:
                args.append(self.visit_expr(chain["other"]))
            spec = {**spec, "bias": bias is not None, "add": chain["other"] is not None,
                    "post": chain["post"]}
            return relax.op.call_pure_packed(CONV, *args, _spec(spec), ty_args=ty)

    rewrite = Rewrite(mod)
    gv = mod.get_global_var("main")
    rewrite.builder_.update_func(gv, rewrite.visit_expr(main))
    return relax.transform.DeadCodeElimination()(rewrite.builder_.get())


def _eligible(value, weights, bound) -> bool:
    """A float32 NHWC 2-D convolution by a weight (OIHW, transposed to HWIO) with symmetric
    padding: what oneDNN's convolution computes."""
    if not (isinstance(value, relax.Call) and isinstance(value.op, tvm.ir.Op)
            and value.op.name == "relax.nn.conv2d"):
        return False
    a = value.attrs
    if (a.data_layout, a.kernel_layout, a.out_layout) != ("NHWC", "HWIO", "NHWC"):
        return False
    x, w = value.args
    if _dtype(x) != "float32" or _dtype(value) != "float32" or _static_shape(x) is None:
        return False
    pad = [int(p) for p in a.padding]
    if pad[0] != pad[2] or pad[1] != pad[3]:
        return False
    transpose = bound.get(w) if isinstance(w, relax.Var) else None
    return (isinstance(transpose, relax.Call) and isinstance(transpose.op, tvm.ir.Op)
            and transpose.op.name == "relax.permute_dims" and transpose.attrs.axes is not None
            and [int(x) for x in transpose.attrs.axes] == [2, 3, 1, 0]
            and any(transpose.args[0].same_as(p) for p in weights)
            and _static_shape(transpose.args[0]) is not None)


def _geometry(conv, bound) -> dict:
    return {"data": _static_shape(conv.args[0]), "weight": _static_shape(bound[conv.args[1]].args[0]),
            "stride": [int(s) for s in conv.attrs.strides], "groups": int(conv.attrs.groups)}


def _chain(var, conv, bound, consumers, derived, taken: set) -> dict:
    """What oneDNN computes with the convolution bound to ``var``: its bias, batch norm, residual
    add and activation, each taken only where it is the single reader of what came before."""
    chain = {"conv": conv, "end": conv, "bias": None, "bn": None, "other": None, "post": ["none", []]}
    channels = _static_shape(conv)[-1]

    def single(v):
        users = consumers.get(v, [])
        return users[0] if len(users) == 1 else None

    def advance(v, value):
        chain["end"] = value
        return v

    nxt = single(var)
    value = bound.get(nxt)
    if _is(value, "relax.add"):  # a bias: the other operand, from the weights, along the channels
        other = value.args[1] if value.args[0].same_as(var) else value.args[0]
        shape = _static_shape(other)
        if (isinstance(other, relax.Var) and derived.get(other) and shape is not None
                and shape[-1] == channels and all(d == 1 for d in shape[:-1]) and _dtype(other) == "float32"):
            chain["bias"] = other
            var = advance(nxt, value)
            nxt = single(var)
            value = bound.get(nxt)
    if _is(value, "relax.nn.batch_norm") and value.args[0].same_as(var) and int(value.attrs.axis) == 3 \
            and all(isinstance(a, relax.Var) and derived.get(a) for a in value.args[1:5]):
        item = single(nxt)
        got = bound.get(item)
        if isinstance(got, relax.TupleGetItem) and got.index == 0:
            chain["bn"] = value
            var = advance(item, got)
            nxt = single(var)
            value = bound.get(nxt)
    if _is(value, "relax.add") and nxt not in taken:  # a residual: another activation
        other = value.args[1] if value.args[0].same_as(var) else value.args[0]
        if (isinstance(other, relax.Var) and not derived.get(other)
                and _static_shape(other) == _static_shape(value) and _dtype(other) == "float32"):
            chain["other"] = other
            taken.add(nxt)
            var = advance(nxt, value)
            nxt = single(var)
            value = bound.get(nxt)
    if _is(value, _RELU):
        chain["post"] = ["relu", []]
        advance(nxt, value)
    elif _is(value, _CLIP) and chain["other"] is None and _bounds(value) == (0.0, 6.0):
        chain["post"] = ["hardtanh", [0.0, 6.0]]
        advance(nxt, value)
    return chain


def _is(value, name: str) -> bool:
    """Whether ``value`` is a call of the Relax operator ``name``."""
    return isinstance(value, relax.Call) and isinstance(value.op, tvm.ir.Op) and value.op.name == name


def _bounds(clip) -> tuple:
    values = []
    for bound in clip.args[1:3]:
        if not isinstance(bound, (tvm.tirx.IntImm, tvm.tirx.FloatImm)):
            return (None, None)
        values.append(float(bound.value))
    return tuple(values)


def _weight_derived(weights: list, bound: dict) -> dict:
    """variable -> whether its value is computed from the weights alone (and constants)."""
    derived = {p: True for p in weights}
    for var, value in bound.items():  # in binding order
        free = relax.analysis.free_vars(value)
        derived[var] = bool(free) and all(derived.get(v, False) for v in free)
    return derived


def _dtype(expr):
    return getattr(getattr(expr, "ty", None), "dtype", None)
