"""A compiled Relax module called with torch tensors: DLPack in and out, no copies."""
from __future__ import annotations

import torch
import tvm_ffi
from tvm import relax

from ..lower.target import tvm_device


class Kernel:
    """Runs one executable on one device. Inputs must be contiguous tensors on that device."""

    def __init__(self, executable, device: torch.device):
        self.device = device
        self._vm = relax.VirtualMachine(executable, tvm_device(device))
        self._main = self._vm["main"]

    def __call__(self, tensors: list) -> list:
        if self.device.type == "cuda":
            with tvm_ffi.use_torch_stream():  # run on the stream PyTorch is using now
                outs = self._main(*tensors)
        else:
            outs = self._main(*tensors)
        # from_dlpack shares memory: TVM allocated the outputs, torch now co-owns them
        return [torch.from_dlpack(o) for o in outs]
