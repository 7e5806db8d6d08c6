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
        # tvm-ffi hands back torch tensors for torch inputs (DLPack, TVM's memory co-owned); a
        # second from_dlpack on those would cost 5 us per output for nothing
        return [o if isinstance(o, torch.Tensor) else torch.from_dlpack(o) for o in outs]
