"""The ATen decomposition table handed to aot_autograd.

Core ATen (what TVM's importer is written against) plus the training-time normalization ops and
their backwards: TVM translates only their first result faithfully, so we give it their parts.
"""
from __future__ import annotations

import functools

import torch
from torch._decomp import core_aten_decompositions, get_decompositions

aten = torch.ops.aten

_EXTRA = [
    aten._native_batch_norm_legit_functional,
    aten.native_batch_norm_backward,
    aten.native_layer_norm,
    aten.native_layer_norm_backward,
    aten.native_group_norm,
    aten.native_group_norm_backward,
    aten.gelu_backward,
    aten.threshold_backward,
    aten._softmax_backward_data,
    aten._log_softmax_backward_data,
    aten.embedding_dense_backward,
    aten.var_mean,
]


@functools.lru_cache(maxsize=1)
def decompositions() -> dict:
    table = dict(core_aten_decompositions())
    table.update(get_decompositions(_EXTRA))
    return table
