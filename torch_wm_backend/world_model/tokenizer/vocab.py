"""What a token is: an instruction kind, an attribute id and NUM_FEATS numbers in named slots.

The ids and the slot order are the network's input layout: the shipped weights were trained on
them, so entries are only ever appended (and the weights retrained).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PAD, UNK = 0, 1
KINDS = (
    "split", "fuse", "reorder", "merge", "loop_partition", "reorder_block_iter_var", "add_unit_loop",
    "parallel", "vectorize", "bind", "unroll",
    "cache_read", "cache_write", "reindex_cache_read", "reindex_cache_write", "cache_inplace",
    "cache_index", "reindex", "read_at", "write_at",
    "compute_at", "reverse_compute_at", "compute_inline", "reverse_compute_inline",
    "decompose_reduction", "rfactor", "storage_align", "set_scope", "unsafe_set_dtype",
    "blockize", "tensorize", "annotate", "unannotate", "transform_layout", "transform_block_layout",
    "set_axis_separator", "decompose_padding", "pad_einsum", "rolling_buffer", "enter_postproc",
    "unsafe_hide_buffer_access", "annotate_buffer_access", "fuse_reduction_epilogue",
)
KIND_IDS = {k: i + 2 for i, k in enumerate(KINDS)}
NUM_KINDS = len(KINDS) + 2

# Instructions that emit no token: getters only name the blocks and loops later instructions act
# on; a sampler's decision is folded into the instruction that consumes the sampled value.
GETTERS = frozenset({
    "get_sblock", "get_loops", "get_child_blocks", "get_producers", "get_consumers",
    "get_output_blocks",
})
SAMPLERS = frozenset({
    "sample_perfect_tile", "sample_partitioned_tile", "sample_categorical", "sample_compute_location",
})

ATTRS = (
    "meta_schedule.parallel", "meta_schedule.vectorize", "meta_schedule.unroll_explicit",
    "meta_schedule.unroll_implicit", "meta_schedule.cooperative_fetch",
    "meta_schedule.tiling_structure", "meta_schedule.thread_extent_low_inclusive",
    "meta_schedule.thread_extent_high_inclusive", "meta_schedule.auto_tensorize",
    "meta_schedule.auto_tensorize_init", "meta_schedule.layout_rewrite_preproc",
    "meta_schedule.random_compute_producer", "meta_schedule.inline_rule",
    "software_pipeline_stage", "software_pipeline_order", "software_pipeline_async_stages",
    "pragma_auto_unroll_max_step", "pragma_unroll_explicit",
    "blockIdx.x", "blockIdx.y", "blockIdx.z", "threadIdx.x", "threadIdx.y", "threadIdx.z",
    "vthread.x", "vthread.y", "vthread.z",
    "global", "shared", "shared.dyn", "local", "warp",
    "wmma.matrix_a", "wmma.matrix_b", "wmma.accumulator",
)
ATTR_IDS = {a: i + 2 for i, a in enumerate(ATTRS)}
NUM_ATTRS = len(ATTRS) + 2
NO_ATTR, UNK_ATTR = 0, 1

MAX_FACTORS = 5   # split factors given a slot each; a longer split's others only count in NUM_FACTORS

# Feature slots: feats[:, SLOT]. log2p(x) is log2(1 + |x|).
POSTPROC = 0          # 1 from enter_postproc on (the final parallel / vectorize / unroll / bind)
POSITION = 1          # the instruction's index / the trace's instruction count
FACTORS = 2           # split: log2 of tile factor i in slot FACTORS + i (0 where unknown)
NUM_FACTORS = FACTORS + MAX_FACTORS         # split: factor count / MAX_FACTORS
FACTOR_MISSING = NUM_FACTORS + 1            # split: 1 where a factor had no known value
ANN_VALUE = 9         # annotate: log2p of the sampled value (the categorical's candidate)
ANN_FRACTION = 10     # annotate: the categorical decision / (candidates - 1)
AT_ROOT = 11          # compute_at: the sampled location is the root (decision -1)
AT_INLINE = 12        # compute_at: the sampled location is inline (decision -2)
AT_LOOP = 13          # compute_at: log2p of the sampled location (a loop index)
LITERAL = 14          # a literal: annotate's value (bool, log2p of a number or list length) or
#                       cache_read/write's log2p buffer index
LOOP_POSITION = 15    # first loop operand: its position in its block's nest / nest length
NEST_DEPTH = 16       # first loop operand: log2p of its block's nest length
LOOP_EXTENT = 17      # first loop operand: log2p of its extent (0 where unknown)
LOOP_REDUCE = 18      # first loop operand: 1 reduction, 0 spatial, 0.5 unknown
BLOCK_ORDER = 19      # first block operand: first-seen index among the trace's blocks / their count
BLOCK_REDUCTION = 20  # first block operand: 1 a reduction block, 0 not, 0.5 unknown
NUM_LOOPS = 21        # log2p of the number of loop operands
LOOPS_EXTENT = 22     # log2p of the loop operands' extents' product (0 where one is unknown)
EXTENT_KNOWN = 23     # first loop operand: 1 where its extent is known
NUM_FEATS = 24

# What the slots mean, as a number: weights record the version they were trained on (weights
# from before it was recorded: 1), and a tokenizer of another version does not feed them.
VERSION = 1


@dataclass
class TokenizedTrace:
    kinds: np.ndarray      # int64 [L]
    attrs: np.ndarray      # int64 [L]
    feats: np.ndarray      # float32 [L, NUM_FEATS]
    inst_index: np.ndarray  # int64 [L]: index of the instruction each token came from
    num_unknown: int = 0

    def __len__(self) -> int:
        return len(self.kinds)
