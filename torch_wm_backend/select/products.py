"""Whose matrix products a whole-graph module keeps, TVM's tuned kernels or PyTorch's (the
``matmul="auto"`` option): the two modules, both built and correct, race on the call's inputs and
PyTorch's products are kept where they win by the race's margin. Decided once, when the module is
built; the winner is what the disk cache keeps."""
from __future__ import annotations

import logging

import torch

from ..runtime.subgraph import call_kernel
from .race import Timer, race

log = logging.getLogger("torch_wm_backend")
ROUNDS = 5  # per race: a module is built once, and its graph's own race follows (choice.py)


def products_race(name: str, kernels: dict, args: list, device: torch.device, timer=None) -> str:
    """``kernels``: "tvm" and "pytorch" -> the module's kernel. The one to keep."""
    timer = timer or Timer(rounds=ROUNDS)
    theirs, ours = kernels["pytorch"], kernels["tvm"]
    timing = race(lambda: call_kernel(theirs, args), lambda: call_kernel(ours, args), device, timer)
    keep = "pytorch" if timing.candidate_wins else "tvm"
    log.info("%s: products by PyTorch %.3f ms, by TVM %.3f ms -> %s%s", name,
             timing.candidate_s * 1e3, timing.reference_s * 1e3,
             "PyTorch's" if keep == "pytorch" else "TVM's", " (machine busy)" if timing.busy else "")
    return keep
