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
from .products import PackedWeight


class Kernel:
    """Runs one executable on one device. Inputs must be contiguous tensors on that device."""

    def __init__(self, executable, device: torch.device):
        self.device = device
        self._executable = executable
        self._local = threading.local()
        self._main()  # a VM for this thread now: a module that cannot load fails here, not later

    _generation = 0  # a VM made before a later generation is made again (FrozenKernel)
    matmul = "tvm"  # whose matrix products the module calls: "pytorch" (lower/products.py) or TVM's

    def _main(self):
        main = getattr(self._local, "main", None)
        if main is None or self._local.generation != self._generation:
            vm = relax.VirtualMachine(self._executable, tvm_device(self.device))
            self._local.vm, main = vm, vm["main"]
            self._local.main, self._local.generation = main, self._generation
        return main

    def __call__(self, tensors: list) -> list:
        threads.sync()
        main = self._main()
        if self.device.type == "cuda":
            with tvm_ffi.use_torch_stream():  # run on the stream PyTorch is using now
                outs = main(*tensors)
        elif self.matmul == "pytorch":  # PyTorch's threads own the cores between its products
            with threads.calling_thread_only():
                outs = main(*tensors)
        else:
            outs = main(*tensors)
        counters.bump("kernel_calls")
        # tvm-ffi hands back torch tensors for torch inputs (DLPack, TVM's memory co-owned); a
        # second from_dlpack on those would cost 5 us per output for nothing
        return [o if isinstance(o, torch.Tensor) else torch.from_dlpack(o) for o in outs]


class FrozenKernel(Kernel):
    """A module whose weights were lifted (lower/freeze.py): ``main_transform_params`` prepares
    them once per set of weights, ``main`` takes the inputs and the prepared weights. ``weights``:
    positions of the weights among the tensors a call passes. A weight written in place since
    (an optimizer step, ``load_state_dict``), or another tensor in its place, is seen by its
    version counter or identity, and the weights are prepared again: never a stale result. A CUDA
    graph a VM captured holds the prepared weights' addresses, so new prepared weights mean new
    VMs (each captures again on its first call)."""

    def __init__(self, executable, device: torch.device, weights: tuple):
        super().__init__(executable, device)
        self.weights = tuple(weights)
        self._inputs = None  # positions of the other tensors, set on the first call
        self._stamp = None
        self._prepared = ()
        self._prepare_lock = threading.Lock()

    def _prepared_for(self, weights: list) -> tuple:
        stamp = [(id(w), w._version) for w in weights]
        if stamp != self._stamp:
            with self._prepare_lock:
                if stamp != self._stamp:
                    transform = self._vm_function("main_transform_params")
                    prepared = tuple(transform(list(weights)))
                    counters.bump("weights_prepared")
                    held = {w.data_ptr() for w in weights}  # passed through, not copies
                    counters.bump("prepared_weight_bytes",
                                  _bytes(prepared, held) - _bytes(self._prepared, held))
                    self._prepared, self._stamp = prepared, stamp
                    self._generation += 1
        return self._prepared

    def __call__(self, tensors: list) -> list:
        if self._inputs is None:
            self._inputs = tuple(i for i in range(len(tensors)) if i not in self.weights)
        prepared = self._prepared_for([tensors[i] for i in self.weights])
        return super().__call__([tensors[i] for i in self._inputs] + list(prepared))

    def _vm_function(self, name: str):
        self._main()  # this thread's VM
        return self._local.vm[name]


def _bytes(prepared, held) -> int:
    """Memory of the prepared weights that are not the user's tensors passed through (PyTorch's
    packed weights, runtime/products.py, count too)."""
    return sum(p.nbytes if isinstance(p, PackedWeight) else p.numel() * p.element_size()
               for p in prepared
               if isinstance(p, PackedWeight) or (isinstance(p, torch.Tensor) and p.data_ptr() not in held))


def kernel_for(executable, device: torch.device, weights: tuple = ()) -> Kernel:
    """The callable for an executable: lifted weights (``weights``: their positions) or not."""
    return FrozenKernel(executable, device, weights) if weights else Kernel(executable, device)
