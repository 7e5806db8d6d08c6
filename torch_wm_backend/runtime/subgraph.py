"""The module that stands in a partitioned graph where TVM runs: compiles once per input signature
(shapes, dtypes, device), then calls the kernel or, where the eager guard chose so, PyTorch."""
from __future__ import annotations

import torch

from ..settings import Settings


def signature(args) -> tuple:
    sig = []
    for a in args:
        if isinstance(a, torch.Tensor):
            sig.append((tuple(a.shape), a.dtype, a.device))
        else:
            sig.append(("value", a))
    return tuple(sig)


def device_of(args, outputs=()) -> torch.device:
    """Where a subgraph runs: its inputs' device (0-dim CPU scalars follow the others); for a
    subgraph without tensor inputs (it only creates tensors), its outputs' device."""
    tensors = [a for a in args if isinstance(a, torch.Tensor)] or list(outputs)
    devices = {a.device for a in tensors if a.dim() > 0} or {a.device for a in tensors}
    non_cpu = [d for d in devices if d.type != "cpu"]
    return non_cpu[0] if non_cpu else torch.device("cpu")


def output_vals(gm: torch.fx.GraphModule) -> list:
    """The traced (fake) values of a subgraph's outputs."""
    out = next(n for n in gm.graph.nodes if n.op == "output").args[0]
    nodes = out if isinstance(out, (tuple, list)) else [out]
    return [n.meta["val"] for n in nodes if isinstance(n, torch.fx.Node)
            and isinstance(n.meta.get("val"), torch.Tensor)]


def call_kernel(kernel, args) -> list:
    """What a TvmSubgraph does per call once compiled (the guard times exactly this)."""
    device = kernel.device
    return kernel([a.to(device).contiguous() for a in args if isinstance(a, torch.Tensor)])


class TvmSubgraph(torch.nn.Module):
    def __init__(self, name: str, eager: torch.fx.GraphModule, settings: Settings, budget=None):
        super().__init__()
        self.budget = budget  # the tuning time budget shared by the subgraphs of one graph
        self.name = name
        self.eager = eager  # the ATen subgraph it replaces: the fallback and the guard's reference
        self.settings = settings
        self._entries: dict = {}
        out = next(n for n in eager.graph.nodes if n.op == "output").args[0]
        self._returns_tuple = isinstance(out, (tuple, list))

    def forward(self, *args):
        key = signature(args)
        kernel = self._entries.get(key)
        if kernel is None:
            from ..pipeline import compile_subgraph

            kernel = compile_subgraph(self.name, self.eager, list(args), self.settings, self.budget)
            self._entries[key] = kernel
        if kernel == "eager":
            return self.eager(*args)
        outs = call_kernel(kernel, args)
        return tuple(outs) if self._returns_tuple else outs[0]
