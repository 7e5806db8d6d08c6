"""Inference batch norms folded into the convolutions before them: the weight scaled and the shift
added in the weights' preparation, one add left per output, PyTorch's values."""
import re

import pytest
import torch

from torch_wm_backend.build import build
from torch_wm_backend.lower import variants
from torch_wm_backend.lower.freeze import exported
from torch_wm_backend.lower.target import cpu_target
from torch_wm_backend.runtime.kernel import kernel_for


def _trained(bn: torch.nn.BatchNorm2d) -> torch.nn.BatchNorm2d:
    """Statistics a trained model has, not 0 and 1."""
    bn.running_mean.uniform_(-1, 1)
    bn.running_var.uniform_(0.5, 2)
    bn.weight.data.uniform_(0.5, 2)
    bn.bias.data.uniform_(-1, 1)
    return bn


class Net(torch.nn.Module):
    """conv + BN + ReLU6, a depthwise conv with a bias + BN, and a batch norm after pooling (no
    convolution before it: it stays as it is)."""

    def __init__(self):
        super().__init__()
        self.conv, self.bn = torch.nn.Conv2d(8, 16, 3, padding=1, bias=False), _trained(torch.nn.BatchNorm2d(16))
        self.depth = torch.nn.Conv2d(16, 16, 3, stride=2, padding=1, groups=16)
        self.bn2 = _trained(torch.nn.BatchNorm2d(16))
        self.bn3 = _trained(torch.nn.BatchNorm2d(16))

    def forward(self, x):
        y = torch.clamp(self.bn(self.conv(x)), 0, 6)
        z = torch.relu(self.bn2(self.depth(y)))
        return self.bn3(torch.nn.functional.avg_pool2d(z, 2)).mean((2, 3))


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_batch_norms_after_convolutions_fold_into_their_weights(layout):
    torch.manual_seed(0)
    model, x = Net().eval(), torch.randn(2, 8, 12, 12)
    gm, args, weights = exported(model, (x,))
    mod = variants(gm, args, weights, layout=layout)["tvm"]
    main, prepare = str(mod["main"]), str(mod["main_transform_params"])
    kernels = re.findall(r"call_tir\((\w+),", main)
    # the pooled batch norm's four operations stay; the two after convolutions leave an add each
    assert [k.rstrip("0123456789") for k in kernels].count("divide") == 1, kernels
    assert sum(k.startswith("conv2d") for k in kernels) == 2
    assert "rsqrt" in prepare  # the scales are computed with the weights, once
    kernel = kernel_for(build(mod, cpu_target()), torch.device("cpu"), weights)
    with torch.no_grad():
        torch.testing.assert_close(kernel(args)[0], model(x), atol=1e-5, rtol=1e-5)
        model.bn2.running_var.mul_(3.0)  # in place: folded into the weights prepared again
        torch.testing.assert_close(kernel(args)[0], model(x), atol=1e-5, rtol=1e-5)


def test_only_a_bias_along_the_channels_folds():
    from torch_wm_backend.lower.batch_norm import _along

    assert _along([1, 16, 1, 1], 1, 16) and _along([16], 3, 16) and _along([1, 1, 16], 3, 16)
    assert not _along([16], 1, 16)  # added to NCHW it broadcasts along W, not the channels
    assert not _along([1], 1, 16) and not _along([1, 16, 2, 1], 1, 16) and not _along(None, 1, 16)
