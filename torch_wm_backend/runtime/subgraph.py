"""The module that stands in a partitioned graph where TVM runs: compiles once per input signature
(shapes, dtypes, device), then calls the kernel or, where the selection chose so, PyTorch."""
from __future__ import annotations

import threading
import time
from typing import Callable, Optional

import torch


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
    """What a TvmSubgraph does per call once compiled."""
    device = kernel.device
    return kernel([a.to(device).contiguous() for a in args if isinstance(a, torch.Tensor)])


class TvmSubgraph(torch.nn.Module):
    """``compile(name, eager, args, weights=...)`` returns the TVM kernel for these inputs, or None
    where TVM cannot build a correct one (then PyTorch runs). ``use_tvm`` is the selection's
    choice."""

    def __init__(self, name: str, eager: torch.fx.GraphModule, compile: Callable,
                 weights: tuple = ()):
        super().__init__()
        self.weights = tuple(weights)  # positions of inputs that are inference weights (frozen)
        self.name = name
        self.eager = eager  # the ATen subgraph it replaces: the fallback and the reference
        self._eager_forward = eager.forward  # a plain attribute: submodule lookups are slow
        self._compile = compile
        self._kernels: dict = {}
        self._lock = threading.Lock()
        self.last: Optional[object] = None  # the kernel of the latest call (None: PyTorch)
        self.use_tvm = True
        self.timings: Optional[list] = None  # when a list, each call appends its wall time
        out = next(n for n in eager.graph.nodes if n.op == "output").args[0]
        self._returns_tuple = isinstance(out, (tuple, list))

    def has_kernel(self) -> bool:
        return self.last is not None

    def compile_for(self, args) -> bool:
        """Compile for these inputs now (not on a call); whether TVM built a correct kernel."""
        kernel = self._kernel_for(tuple(args))
        self.__dict__["last"] = kernel
        return kernel is not None

    def forward(self, *args):
        if self.timings is None:
            return self._run(args)
        return self._timed(args)

    # called once per subgraph per model call: skip nn.Module's hook machinery (measured: the
    # calls and bookkeeping around 53 MobileNetV2 subgraphs cost more than 10% of the model)
    __call__ = forward

    def _timed(self, args):
        cuda = self.last is not None and self.last.device.type == "cuda"
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        out = self._run(args)
        if cuda:
            torch.cuda.synchronize()
        self.timings.append(time.perf_counter() - start)
        return out

    def _kernel_for(self, args):
        key = signature(args)
        try:
            return self._kernels[key]
        except KeyError:
            with self._lock:  # compiled once, whichever thread calls first
                if key not in self._kernels:
                    self._kernels[key] = self._compile(self.name, self.eager, list(args),
                                                       weights=self.weights)
                return self._kernels[key]

    def _run(self, args):
        kernel = self._kernel_for(args)
        if self.last is not kernel:
            self.__dict__["last"] = kernel  # plain attribute: nn.Module.__setattr__ is slow
        if kernel is None or not self.use_tvm:
            return self._eager_forward(*args)
        outs = call_kernel(kernel, args)
        return tuple(outs) if self._returns_tuple else outs[0]
