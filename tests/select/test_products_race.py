"""``matmul="auto"``: of a module with TVM's products and one with PyTorch's, the faster is kept."""
import torch
from fake_timer import FakeTimer

from torch_wm_backend.select import products_race


def test_the_faster_module_is_kept():
    calls = {"tvm": 0, "pytorch": 0}

    def kernel(side):
        class K:
            device = torch.device("cpu")

            def __call__(self, tensors):
                calls[side] += 1
                return tensors
        return K()

    kernels = {side: kernel(side) for side in calls}
    x = [torch.ones(2)]
    assert products_race("m", kernels, x, torch.device("cpu"), FakeTimer(default_win=True)) == "pytorch"
    assert products_race("m", kernels, x, torch.device("cpu"), FakeTimer(default_win=False)) == "tvm"
    assert calls["tvm"] > 0 and calls["pytorch"] > 0  # both ran on the call's inputs
