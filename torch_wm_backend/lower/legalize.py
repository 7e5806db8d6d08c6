"""Relax operators to TIR kernels: TVM's LegalizeOps, erf and softmax's exp computed in the kernel.

TVM legalizes ``erf`` (and GELU, which is built on it) to ``tir.erf``, which LLVM compiles to a
call of the C library's scalar ``erff`` per element: no vector instructions, whatever the schedule.
BERT-base's GELU kernel (128 × 3072 floats) took 4.1 ms tuned, 28% of the whole model (results/
kernels_bert_base.md), where PyTorch's took 0.1–0.2 ms (one-off). TOPI's ``fast_erf`` is a
rational polynomial that vectorizes, within 4.2e-7 of the exact erf over [-6, 6] for float32
(PyTorch's own float32 erf: 6e-8). Softmax's ``exp`` (tir.exp: scalar ``expf`` calls alike; BERT-base's attention softmax
236 µs, 12 per call) becomes TOPI's ``fast_exp``. Other dtypes than float32 keep TVM's rules.
"""
from __future__ import annotations

import math

from tvm import relax, te, tirx, topi

FAST = ("float32",)


def legalize():
    """LegalizeOps with this module's rules: the one place Relax operators become kernels."""
    return relax.transform.LegalizeOps({"relax.erf": _erf, "relax.nn.gelu": _gelu,
                                        "relax.nn.softmax": _softmax})


def _erf_of(x):
    return topi.fast_erf(x) if x.dtype in FAST else topi.erf(x)


def _erf(bb: relax.BlockBuilder, call: relax.Call) -> relax.Expr:
    return bb.call_te(_erf_of, call.args[0], primfunc_name_hint="erf")


def _gelu(bb: relax.BlockBuilder, call: relax.Call) -> relax.Expr:
    """x · Φ(x) = x · (1 + erf(x / √2)) / 2, as TVM's own rule."""

    def gelu(x):
        half = tirx.const(0.5, x.dtype)
        return x * (half + _erf_of(x * tirx.const(math.sqrt(0.5), x.dtype)) * half)

    return bb.call_te(gelu, call.args[0], primfunc_name_hint="gelu")


ROW_SOFTMAX = "tvm_wm.row_softmax"  # a softmax kernel's attribute: its vector lanes (build/cpu_softmax.py)
OPAQUE = 8  # TVM's kOpaque op pattern: nothing is fused into the kernel


def _softmax(bb: relax.BlockBuilder, call: relax.Call) -> relax.Expr:
    """exp(x - max) / sum, as TOPI's softmax, with ``fast_exp`` (within 4.1e-6 relative of the
    exact exp over [-80, 0], the range softmax feeds it; 0 below -87.7, where exp is under 1e-38).
    A float32 softmax over a last axis of static length, a multiple of 4, computes each exp once
    and is marked for build/cpu_softmax.py's schedule on CPUs (vectorized rows); MetaSchedule's
    search found none as fast. It stays a kernel of its own (opaque): a producer fused into it
    would be recomputed per pass over the row."""
    axis = int(call.attrs.axis)
    x = call.args[0]
    shape = getattr(x.ty.shape, "values", None)  # None where only the rank is known
    last = bool(shape) and axis % len(shape) == len(shape) - 1
    n = shape[-1] if last else None
    lanes = next((v for v in (16, 8, 4) if isinstance(n, tirx.IntImm) and int(n) % v == 0), 0)
    if x.ty.dtype in FAST and lanes:
        return bb.call_te(_row_softmax, x, primfunc_name_hint="softmax",
                          primfunc_attrs={"op_pattern": OPAQUE, ROW_SOFTMAX: lanes})

    def softmax(x):
        if x.dtype not in FAST:
            return topi.nn.softmax(x, axis)
        a = axis % len(x.shape)
        e = topi.fast_exp(x - topi.max(x, axis=a, keepdims=True))
        return e / topi.sum(e, axis=a, keepdims=True)

    return bb.call_te(softmax, x, primfunc_name_hint="softmax")


def _row_softmax(x):
    """Softmax over the last axis in named steps: max, exp (once per element), sum, quotient."""
    rows, n = x.shape[:-1], x.shape[-1]
    k = te.reduce_axis((0, n), name="k")
    top = te.compute(rows, lambda *i: te.max(x[(*i, k)], axis=k), name="softmax_max")
    shifted = te.compute(x.shape, lambda *i: x[i] - top[i[:-1]], name="softmax_shift")
    e = topi.fast_exp(shifted)
    j = te.reduce_axis((0, n), name="j")
    total = te.compute(rows, lambda *i: te.sum(e[(*i, j)], axis=j), name="softmax_sum")
    return te.compute(x.shape, lambda *i: e[i] / total[i[:-1]], name="softmax")
