"""A compiled Relax module called with torch tensors: DLPack in and out, no copies.

A Relax VM holds the registers of the call in progress, so one VM must not serve two callers at
once (measured: four Python threads sharing one crashed with out-of-range register indices and a
segmentation fault). Each calling thread gets a VM of its own over the shared executable.
"""
from __future__ import annotations

import threading

import torch
import tvm_ffi
from tvm import relax

from .. import counters, threads
from ..lower.target import tvm_device


class Kernel:
    """Runs one executable on one device. Inputs must be contiguous tensors on that device."""

    def __init__(self, executable, device: torch.device):
        self.device = device
        self._executable = executable
        self._local = threading.local()
        self._main()  # a VM for this thread now: a module that cannot load fails here, not later

    def _main(self):
        main = getattr(self._local, "main", None)
        if main is None:
            vm = relax.VirtualMachine(self._executable, tvm_device(self.device))
            self._local.vm, main = vm, vm["main"]
            self._local.main = main
        return main

    def __call__(self, tensors: list) -> list:
        threads.sync()
        main = self._main()
        if self.device.type == "cuda":
            with tvm_ffi.use_torch_stream():  # run on the stream PyTorch is using now
                outs = main(*tensors)
        else:
            outs = main(*tensors)
        counters.bump("kernel_calls")
        # tvm-ffi hands back torch tensors for torch inputs (DLPack, TVM's memory co-owned); a
        # second from_dlpack on those would cost 5 us per output for nothing
        return [o if isinstance(o, torch.Tensor) else torch.from_dlpack(o) for o in outs]
