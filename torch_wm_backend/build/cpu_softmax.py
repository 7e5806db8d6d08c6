"""The CPU schedule of a row softmax (lower/legalize.py marks those kernels; cpu_default.py applies
this schedule to them, as to other kernels without a record, its own): rows in parallel,
each row's max and sum reduced in vector lanes (rfactor) then across them, its exps computed once
and vectorized, the quotient vectorized.

MetaSchedule's CPU search does not find this: BERT-base's attention softmax (12 × 128 rows of 128)
kept a tuned schedule with no vector loop that computed every exp twice; the kernel is not tuned on
CPUs, it gets this schedule (benchmarks/softmax_kernel.py measures the three side by side).
"""
from __future__ import annotations

import tvm

from ..lower.legalize import ROW_SOFTMAX


def is_row_softmax(func) -> bool:
    return isinstance(func, tvm.tirx.PrimFunc) and func.attrs is not None and ROW_SOFTMAX in func.attrs


def schedule_row_softmax(func: tvm.tirx.PrimFunc) -> "tvm.s_tir.Schedule":
    """The schedule of one marked softmax kernel (``func`` named ``main``)."""
    from tvm import s_tir

    lanes = int(func.attrs[ROW_SOFTMAX])
    sch = s_tir.Schedule(func)
    sch.compute_inline(sch.get_sblock("softmax_shift"))
    partial = {}
    for name in ("softmax_max", "softmax_sum"):  # each reduces into `lanes` partial results
        _, inner = sch.split(sch.get_loops(sch.get_sblock(name))[-1], [None, lanes])
        partial[name] = sch.rfactor(inner, len(sch.get(sch.get_sblock(name)).iter_vars) - 1)
    out = sch.get_sblock("softmax")
    *row_loops, last = sch.get_loops(out)
    row = sch.fuse(*row_loops) if len(row_loops) > 1 else row_loops[0]
    sch.parallel(row)
    sch.vectorize(sch.split(last, [None, lanes])[1])
    for block in (sch.get_sblock("softmax_sum"), partial["softmax_sum"], sch.get_sblock("T_fast_exp"),
                  sch.get_sblock("softmax_max"), partial["softmax_max"]):
        sch.compute_at(block, row)
    sch.vectorize(sch.split(sch.get_loops(sch.get_sblock("T_fast_exp"))[-1], [None, lanes])[1])
    for block in partial.values():  # lanes innermost: one vector per step along the row
        *_, lane, step = sch.get_loops(block)
        sch.reorder(step, lane)
        sch.vectorize(lane)
        sch.decompose_reduction(block, step)
    return sch
