"""Never slower than eager: time a compiled subgraph against the PyTorch ops it replaces."""
from __future__ import annotations

import time

import torch


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn, device: torch.device, budget_s: float = 0.05, repeats: int = 5) -> float:
    """Median seconds per call: ``repeats`` rounds, each long enough to be read reliably."""
    fn()  # warm-up: first-call allocations, lazy inits
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    once = max(time.perf_counter() - start, 1e-7)
    number = max(1, int(budget_s / repeats / once))
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        _sync(device)
        samples.append((time.perf_counter() - start) / number)
    samples.sort()
    return samples[len(samples) // 2]


def faster_is_tvm(tvm_fn, eager_fn, device: torch.device) -> tuple[bool, float, float]:
    with torch.no_grad():
        t_tvm = time_call(tvm_fn, device)
        t_eager = time_call(eager_fn, device)
    return t_tvm <= t_eager, t_tvm, t_eager
