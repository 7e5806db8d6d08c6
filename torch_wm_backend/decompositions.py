"""The ATen decomposition table handed to aot_autograd.

Core ATen (what TVM's importer is written against) plus the training-time normalization ops: TVM
translates only their first result faithfully, and training reads the others, so we give it parts.
An inference graph reads only layer norm's first result, so there it stays whole: TVM's importer
makes it ``relax.nn.layer_norm``, one kernel; decomposed it was two, a mean and a variance kernel
(BERT-base's 25 layer norms: 112 µs each in its module against PyTorch's 31, Intel, 2 cores,
2026-12-05).
"""
from __future__ import annotations

import functools

import torch
from torch._decomp import core_aten_decompositions, get_decompositions

aten = torch.ops.aten

_EXTRA = [
    aten._native_batch_norm_legit_functional,
    aten.native_layer_norm,
    aten.native_group_norm,
]
_WHOLE_IN_INFERENCE = [aten.native_layer_norm]
# Kept whole: its decomposition is an accumulating index_put TVM cannot translate, so one eager op
# beats a fragment of small ones around it.
_KEEP = [aten.embedding_dense_backward]


def _var_mean(x, dim=None, *, correction=None, keepdim=False):
    # torch's own var_mean decomposition emits prims TVM cannot read; var and mean it can
    var = aten.var.correction(x, dim, correction=correction, keepdim=keepdim)
    mean = aten.mean.dim(x, dim, keepdim) if dim is not None else aten.mean.default(x)
    return var, mean


def decompositions(inference: bool = False) -> dict:
    """``inference``: for a graph that builds no autograd graph. A copy each call: aot_autograd
    adds entries to the table it is handed (measured: 944 -> 956 after one inference compile)."""
    return dict(_table(inference))


@functools.lru_cache(maxsize=2)
def _table(inference: bool) -> dict:
    table = dict(core_aten_decompositions())
    table[aten.var_mean.correction] = _var_mean
    table.update(get_decompositions([op for op in _EXTRA
                                     if not (inference and op in _WHOLE_IN_INFERENCE)]))
    for op in _KEEP:
        for overload in op.overloads():
            table.pop(getattr(op, overload), None)
    return table
