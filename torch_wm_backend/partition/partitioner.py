"""Split an ATen graph into TVM subgraphs and PyTorch nodes, in the same graph."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.fx.passes.infra.partitioner import CapabilityBasedPartitioner
from torch.fx.passes.operator_support import OperatorSupportBase

from .support import VIEW_OPS, lowerable, op_name


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
    proposed = partitioner.propose_partitions()
    # A partition of views alone would launch a kernel to move no data: leave it to PyTorch.
    proposed = [p for p in proposed if any(op_name(n) not in VIEW_OPS for n in p.nodes)]
    lowered = {n for p in proposed for n in p.nodes}
    compute = [n for n in gm.graph.nodes if n.op == "call_function"]
    eager = [n for n in compute if n not in lowered and op_name(n) != "getitem"]
    eager_ops = sorted({op_name(n) for n in eager})
    nodes_lowered = sum(op_name(n) != "getitem" for n in lowered)
    fused = partitioner.fuse_partitions(proposed, prefix="tvm_subgraph_")
    names = [name for name, _ in fused.named_children() if name.startswith("tvm_subgraph_")]
    return Partitioned(fused, names, nodes_lowered, len(eager), eager_ops)
