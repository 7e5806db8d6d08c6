"""Channels-last convolutions inside a module (the ``layout`` option's "NHWC").

TVM's ConvertLayout turns each 2-D convolution to NHWC activations and HWIO weights and carries
the layout through the operators that say how (adds, batch norm's arithmetic, ReLU); around an
operator that does not, it transposes back to NCHW and forward again. A clip (ReLU6: every
activation of MobileNetV2) is one such operator in TVM 0.27, and its round trips were 18% of
MobileNetV2's tuned module (two transpose-clip-transpose kernels: 1,138 µs and 3 × 312,
benchmarks/results/kernels_mobilenet_v2_nhwc_clip_transposed.md, 2026-12-06). An elementwise operator commutes
with any transpose, so a transpose, clip and the inverse transpose become the clip alone, which
then fuses into the convolution's kernel; a clip after a transpose that stays (back to NCHW before
MobileNetV2's pooling) goes before it, next to its convolution."""
from __future__ import annotations

import tvm
from tvm import relax
from tvm.relax.dpl import is_op, rewrite_call, wildcard


def to_nhwc(mod: tvm.IRModule) -> tvm.IRModule:
    """``mod`` with its 2-D convolutions channels-last, no layout round trip around a clip and no
    transpose between a clip and what it clips."""
    mod = relax.transform.ConvertLayout({"relax.nn.conv2d": ["NHWC", "HWIO"]})(mod)
    x, low, high = wildcard(), wildcard(), wildcard()
    there = is_op("relax.permute_dims")(x)
    clip = is_op("relax.clip")(there, low, high)
    back = is_op("relax.permute_dims")(clip)

    def without_round_trip(expr, matched):
        first, second = ([int(a) for a in matched[p].attrs.axes] for p in (there, back))
        if [first[i] for i in second] != list(range(len(first))):
            return expr  # not the inverse: a transpose that stays
        return relax.op.clip(matched[x], matched[low], matched[high])

    y, low2, high2 = wildcard(), wildcard(), wildcard()
    transposed = is_op("relax.permute_dims")(y)
    clip_after = is_op("relax.clip")(transposed, low2, high2)

    def clip_first(expr, matched):  # the clip fuses into the convolution before it
        return relax.op.permute_dims(relax.op.clip(matched[y], matched[low2], matched[high2]),
                                     matched[transposed].attrs.axes)

    out = tvm.IRModule(dict(mod.functions), attrs=mod.attrs)
    for gv, f in mod.functions.items():
        if isinstance(f, relax.Function):
            out[gv] = rewrite_call(clip_after, clip_first, rewrite_call(back, without_round_trip, f))
    return out
