"""Inference batch norms folded into the convolutions before them (a frozen-weights module's).

A batch norm after a convolution computes ``(y - mean) / sqrt(var + eps) * gamma + beta`` per
channel. Left as it is, it reaches the convolution's kernel as four elementwise operations per
output, a division among them (``fused_conv2d_subtract_divide_multiply_add``). Folded, the
convolution's weight is scaled by ``gamma / sqrt(var + eps)`` along its output channels and what is
left per output is one add of ``beta - mean * scale`` (a convolution's own bias folds into it too):
the scaling depends on the weights alone, so ``LiftTransformParams`` moves it into the weights'
preparation (freeze.py), done once per set of weights. What oneDNN's convolutions do with their
batch norms (convolutions.py), here for TVM's.
"""
from __future__ import annotations

import tvm
from tvm import relax

from .convolutions import _dtype, _is, _weight_derived
from .products import _static_shape, _uses


def fold_batch_norms(mod: tvm.IRModule, num_input: int) -> tvm.IRModule:
    """``mod`` (before legalization) with each float32 batch norm whose statistics are weights
    (``main``'s parameters from ``num_input`` on) and whose input is a 2-D convolution by a weight
    (read by the batch norm alone, directly or through a bias add) folded into it."""
    if "main" not in [gv.name_hint for gv in mod.functions]:
        return mod
    main = mod["main"]
    bound, consumers = _uses(main)
    derived = _weight_derived(list(main.params[num_input:]), bound)
    folds = {}  # the batch norm's output item (TupleGetItem 0) -> what it folds
    for var, value in bound.items():
        fold = _foldable(var, value, bound, consumers, derived)
        if fold is not None:
            folds[fold["item"]] = fold
    if not folds:
        return mod

    @relax.expr_functor.mutator
    class Rewrite(relax.PyExprMutator):
        def visit_tuple_getitem_(self, item):
            fold = next((f for end, f in folds.items() if item.same_as(end)), None)
            return self.folded(fold) if fold else super().visit_tuple_getitem_(item)

        def folded(self, fold):
            conv, bn, emit = fold["conv"], fold["bn"], self.builder_.emit
            gamma, beta, mean, var = (self.visit_expr(a) for a in bn.args[1:5])
            scale = emit(relax.op.rsqrt(relax.op.add(var, relax.const(bn.attrs.epsilon, "float32"))))
            if bn.attrs.scale:
                scale = emit(relax.op.multiply(scale, gamma))
            shift = relax.op.negative(mean)
            if fold["bias"] is not None:
                shift = relax.op.add(shift, relax.op.reshape(self.visit_expr(fold["bias"]), [fold["channels"]]))
            shift = emit(relax.op.multiply(shift, scale))
            if bn.attrs.center:
                shift = emit(relax.op.add(shift, beta))
            layout = conv.attrs.kernel_layout
            along = [fold["channels"] if c == "O" else 1 for c in layout]
            weight = emit(relax.op.multiply(self.visit_expr(conv.args[1]), relax.op.reshape(scale, along)))
            y = emit(relax.Call(conv.op, [self.visit_expr(conv.args[0]), weight], conv.attrs))
            return relax.op.add(y, relax.op.reshape(shift, fold["shift_shape"]))

    rewrite = Rewrite(mod)
    gv = mod.get_global_var("main")
    rewrite.builder_.update_func(gv, rewrite.visit_expr(main))
    return relax.transform.DeadCodeElimination()(rewrite.builder_.get())


def _foldable(var, value, bound, consumers, derived):
    """What folds where ``value`` (bound to ``var``) is a batch norm's output item after a
    convolution, or None."""
    if not (isinstance(value, relax.TupleGetItem) and value.index == 0):
        return None
    bn = bound.get(value.tuple_value)
    if not _is(bn, "relax.nn.batch_norm") or len(consumers.get(value.tuple_value, [])) != 1:
        return None
    if _dtype(bn.args[0]) != "float32" or not all(
            isinstance(a, relax.Var) and derived.get(a) for a in bn.args[1:5]):
        return None
    data, bias = bn.args[0], None
    if not isinstance(data, relax.Var) or len(consumers.get(data, [])) != 1:
        return None
    value_in = bound.get(data)
    if _is(value_in, "relax.add"):  # a convolution's bias, from the weights
        a, b = value_in.args
        conv_var, bias = (a, b) if _is(bound.get(a), "relax.nn.conv2d") else (b, a)
        if not (isinstance(bias, relax.Var) and derived.get(bias) and isinstance(conv_var, relax.Var)
                and len(consumers.get(conv_var, [])) == 1):
            return None
        value_in = bound.get(conv_var)
    conv = value_in
    if not _is(conv, "relax.nn.conv2d") or _static_shape(conv) is None:
        return None
    weight = conv.args[1]
    layout = conv.attrs.out_layout or conv.attrs.data_layout
    axis = layout.index("C")
    if not (isinstance(weight, relax.Var) and derived.get(weight)) or "O" not in conv.attrs.kernel_layout \
            or int(bn.attrs.axis) % 4 != axis:
        return None
    channels = _static_shape(conv)[axis]
    if bias is not None and not _along(_static_shape(bias), axis, channels):
        return None
    return {"item": value, "bn": bn, "conv": conv, "bias": bias, "channels": channels,
            "shift_shape": [channels if c == "C" else 1 for c in layout]}


def _along(shape, axis: int, channels: int) -> bool:
    """Whether a tensor of ``shape`` added to a 4-D output broadcasts along its channel ``axis``
    alone, one value per channel (a [C] bias of an NCHW output would broadcast along W)."""
    if shape is None or len(shape) > 4:
        return False
    padded = [1] * (4 - len(shape)) + shape
    return padded[axis] == channels and all(d == 1 for i, d in enumerate(padded) if i != axis)
