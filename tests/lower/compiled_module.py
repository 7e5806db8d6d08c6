"""Shared by the tests of modules that call PyTorch's products and oneDNN's convolutions: a model
compiled with ``matmul="pytorch"`` runs its one TVM module, right, in one VM call per call."""
import functools
import os
import sys

import torch

import torch_wm_backend
from torch_wm_backend.backend import tvm_wm

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "select"))
from fake_timer import FakeTimer  # noqa: E402


def runs_one_module_with_pytorchs_products(model, x, cache_dir) -> None:
    torch_wm_backend.reset_stats()
    timer = FakeTimer(default_win=True)  # the whole graph, frozen, wins its race
    compiled = torch.compile(model, backend=functools.partial(tvm_wm, timer=timer), options={
        "trials": 0, "matmul": "pytorch", "cache_dir": str(cache_dir)})
    with torch.no_grad():
        want = model(x)
        for _ in range(2):
            torch.testing.assert_close(compiled(x), want, atol=1e-5, rtol=1e-5)
        stats = torch_wm_backend.stats()
        assert stats["modules_pytorch_products"] == 1 and stats["graphs_one_module"] == 1
        torch_wm_backend.reset_stats()
        torch.testing.assert_close(compiled(x), want, atol=1e-5, rtol=1e-5)
    assert torch_wm_backend.stats()["kernel_calls"] == 1  # TVM's module ran, one VM call
