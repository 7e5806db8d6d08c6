"""Split an ATen graph into TVM subgraphs and PyTorch nodes, in the same graph."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.fx.passes.infra.partitioner import CapabilityBasedPartitioner, Partition
from torch.fx.passes.operator_support import OperatorSupportBase

from .support import VIEW_OPS, lowerable, op_name


# Ops that carry a kernel's FLOPs. Each TVM subgraph holds at most one, with the elementwise work
# around it, so the eager guard can keep TVM for the convolution PyTorch runs far from peak and
# PyTorch for the one it runs at peak, instead of deciding for a whole model at once.
ANCHOR_OPS = {
    "convolution.default", "mm.default", "bmm.default", "addmm.default", "baddbmm.default",
    "conv2d.default", "linear.default", "matmul.default",
}


def split_at_anchors(partition: Partition, order: dict) -> list:
    """Contiguous runs (in graph order) of one partition's nodes with at most one anchor each.

    A run of a topologically ordered, cycle-free partition is cycle-free too: any path leaving and
    re-entering the run would pass through a node between them in graph order, inside the run.
    """
    runs, current, has_anchor = [], [], False
    for node in sorted(partition.nodes, key=order.__getitem__):
        anchor = op_name(node) in ANCHOR_OPS
        if anchor and has_anchor:
            runs.append(current)
            current, has_anchor = [], False
        current.append(node)
        has_anchor |= anchor
    runs.append(current)
    return runs


class _TvmSupport(OperatorSupportBase):
    def is_node_supported(self, submodules, node) -> bool:
        return lowerable(node)


@dataclass
class Partitioned:
    graph_module: torch.fx.GraphModule
    subgraph_names: list  # names of the fused submodules that TVM will compile
    nodes_lowered: int
    nodes_eager: int
    eager_ops: list  # op names left to PyTorch, one per distinct op


def partition(gm: torch.fx.GraphModule) -> Partitioned:
    partitioner = CapabilityBasedPartitioner(
        gm, _TvmSupport(), allows_single_node_partition=True
    )
    order = {node: i for i, node in enumerate(gm.graph.nodes)}
    runs = [run for p in partitioner.propose_partitions() for run in split_at_anchors(p, order)]
    # A partition of views alone would launch a kernel to move no data: leave it to PyTorch.
    runs = [run for run in runs if any(op_name(n) not in VIEW_OPS for n in run)]
    proposed = [Partition(id=i, nodes=run) for i, run in enumerate(runs)]
    lowered = {n for p in proposed for n in p.nodes}
    compute = [n for n in gm.graph.nodes if n.op == "call_function"]
    eager = [n for n in compute if n not in lowered and op_name(n) != "getitem"]
    eager_ops = sorted({op_name(n) for n in eager})
    nodes_lowered = sum(op_name(n) != "getitem" for n in lowered)
    fused = partitioner.fuse_partitions(proposed, prefix="tvm_subgraph_")
    names = [name for name, _ in fused.named_children() if name.startswith("tvm_subgraph_")]
    for module in fused.modules():
        if isinstance(module, torch.fx.GraphModule):
            views_to_reshapes(module)
    return Partitioned(fused, names, nodes_lowered, len(eager), eager_ops)


def views_to_reshapes(gm: torch.fx.GraphModule) -> None:
    """TVM returns contiguous tensors where ATen's values may have been strided views, so a
    ``view`` that PyTorch runs on one (beside a subgraph, or in a subgraph's eager fallback) can
    fail. ``reshape`` views where it can and copies where it must; in these functional graphs
    nothing can tell the two apart. (TVM imports both alike.)"""
    changed = False
    for node in gm.graph.nodes:
        if node.op == "call_function" and node.target is torch.ops.aten.view.default:
            node.target = torch.ops.aten.reshape.default
            changed = True
    if changed:
        gm.recompile()
