"""The module that stands in a partitioned graph where TVM runs: compiles once per input signature
(shapes, dtypes, device), then calls the kernel or, where the eager guard chose so, PyTorch."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Optional

import torch

from ..settings import Settings


def signature(args) -> tuple:
    """What a compiled kernel depends on: shapes, dtypes and devices of tensors, values of the rest.
    Called per subgraph per model call, so kept cheap (torch.Size is already a hashable tuple)."""
    return tuple((a.shape, a.dtype, a.device) if isinstance(a, torch.Tensor) else ("value", a)
                 for a in args)


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


@dataclass
class Compiled:
    """A subgraph for one input signature: its TVM kernel, if TVM built a correct one, and whether
    to run it (the eager guard's choice, which the model-context step may revise)."""
    kernel: Optional[Any]
    use_tvm: bool


class TvmSubgraph(torch.nn.Module):
    def __init__(self, name: str, eager: torch.fx.GraphModule, settings: Settings, budget=None):
        super().__init__()
        self.budget = budget  # the tuning time budget shared by the subgraphs of one graph
        self.name = name
        self.eager = eager  # the ATen subgraph it replaces: the fallback and the guard's reference
        self._eager_forward = eager.forward  # a plain attribute: submodule lookups are slow
        self.settings = settings
        self._entries: dict = {}
        self.last: Optional[Compiled] = None  # the entry of the latest call
        self.timings: Optional[list] = None  # when a list, each call appends its wall time
        out = next(n for n in eager.graph.nodes if n.op == "output").args[0]
        self._returns_tuple = isinstance(out, (tuple, list))

    def forward(self, *args):
        if self.timings is None:
            return self._run(args)
        return self._timed(args)

    # called once per subgraph per model call: skip nn.Module's hook machinery (measured: the
    # calls and bookkeeping around 53 MobileNetV2 subgraphs cost more than 10% of the model)
    __call__ = forward

    def _timed(self, args):
        cuda = self.last is not None and self.last.kernel is not None \
            and self.last.kernel.device.type == "cuda"
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        out = self._run(args)
        if cuda:
            torch.cuda.synchronize()
        self.timings.append(time.perf_counter() - start)
        return out

    def _run(self, args):
        key = signature(args)
        entry = self._entries.get(key)
        if entry is None:
            from ..pipeline import compile_subgraph

            entry = compile_subgraph(self.name, self.eager, list(args), self.settings, self.budget)
            self._entries[key] = entry
        if self.last is not entry:
            self.__dict__["last"] = entry  # plain attribute: nn.Module.__setattr__ is slow
        if not entry.use_tvm:
            return self._eager_forward(*args)
        outs = call_kernel(entry.kernel, args)
        return tuple(outs) if self._returns_tuple else outs[0]
