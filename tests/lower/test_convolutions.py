"""Convolutions computed by oneDNN from inside a channels-last TVM module (the ``matmul`` option's
"pytorch"): bias, batch norm, residual add and activation folded in, weights packed once with
their preparation, the module's other kernels TVM's, and PyTorch's values."""
import re

import torch
from compiled_module import runs_one_module_with_pytorchs_products

from torch_wm_backend.build import build
from torch_wm_backend.lower import variants
from torch_wm_backend.lower.freeze import exported
from torch_wm_backend.lower.target import cpu_target
from torch_wm_backend.runtime.convolutions import CONV, CONV_PACK
from torch_wm_backend.runtime.kernel import kernel_for
from torch_wm_backend.runtime.products import PackedWeight


class Net(torch.nn.Module):
    """conv + BN + ReLU6, a 1x1 conv with bias and a residual add + ReLU, a strided depthwise conv
    + BN, a second residual whose two sides are both convolutions (ResNet's downsampling), pooling."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(8, 16, 3, padding=1, bias=False)
        self.bn = torch.nn.BatchNorm2d(16)
        self.point = torch.nn.Conv2d(16, 16, 1)
        self.depth = torch.nn.Conv2d(16, 16, 3, stride=2, padding=1, groups=16, bias=False)
        self.bn2 = torch.nn.BatchNorm2d(16)
        self.down = torch.nn.Conv2d(16, 16, 1, stride=2, bias=False)
        self.bn3 = torch.nn.BatchNorm2d(16)
        for bn in (self.bn, self.bn2, self.bn3):  # statistics a trained model has, not 0 and 1
            bn.running_mean.uniform_(-1, 1)
            bn.running_var.uniform_(0.5, 2)
            bn.weight.data.uniform_(0.5, 2)
            bn.bias.data.uniform_(-1, 1)

    def forward(self, x):
        y = torch.clamp(self.bn(self.conv(x)), 0, 6)
        z = torch.relu(self.point(y) + y)
        w = torch.relu(self.bn2(self.depth(z)) + self.bn3(self.down(z)))
        return w.mean((2, 3))


def _lowered(model, x, matmuls=("tvm", "pytorch")):
    gm, args, weights = exported(model, (x,))
    return variants(gm, args, weights, layout="NHWC", matmuls=matmuls), args, weights


def test_convolutions_call_onednn_with_what_follows_them_folded():
    torch.manual_seed(0)
    model, x = Net().eval(), torch.randn(2, 8, 12, 12)
    mods, args, weights = _lowered(model, x)
    ours, theirs = mods["tvm"], mods["pytorch"]
    assert any("conv2d" in gv.name_hint for gv in ours.functions)
    main = str(theirs["main"])
    # every convolution is oneDNN's: no TVM convolution, batch norm, clip or add kernel is left
    assert main.count(CONV) == 4 and CONV_PACK not in main
    kernels = re.findall(r"call_tir\((\w+),", main)  # a call's own kernels (the preparation's aside)
    assert kernels == ["transpose", "mean"], kernels
    assert '\\"post\\":[\\"hardtanh\\",[0.0,6.0]]' in main and main.count('\\"add\\":true') == 2
    # the packing (and the batch norms' folding) is the weights' preparation, done once
    assert str(theirs["main_transform_params"]).count(CONV_PACK) == 4
    kernel = kernel_for(build(theirs, cpu_target()), torch.device("cpu"), weights)
    with torch.no_grad():
        torch.testing.assert_close(kernel(args)[0], model(x), atol=1e-5, rtol=1e-5)
    assert sum(isinstance(p, PackedWeight) for p in kernel._prepared) == 4


def test_packed_convolution_weights_follow_the_users_weights():
    torch.manual_seed(0)
    model, x = Net().eval(), torch.randn(1, 8, 12, 12)
    mods, args, weights = _lowered(model, x, ("pytorch",))
    kernel = kernel_for(build(mods["pytorch"], cpu_target()), torch.device("cpu"), weights)
    kernel(args)
    with torch.no_grad():
        model.conv.weight.mul_(-0.5)  # in place: the tensors the compiled graph was given
        model.bn2.running_var.mul_(3.0)  # folded into the depthwise convolution's weight
        torch.testing.assert_close(kernel(args)[0], model(x), atol=1e-5, rtol=1e-5)


def test_nchw_modules_keep_tvms_convolutions():
    torch.manual_seed(0)
    model, x = Net().eval(), torch.randn(1, 8, 12, 12)
    gm, args, weights = exported(model, (x,))
    assert set(variants(gm, args, weights, layout="NCHW", matmuls=("pytorch",))) == {"tvm"}


def test_a_compiled_cnn_runs_its_module_with_onednns_convolutions(tmp_path):
    torch.manual_seed(0)
    runs_one_module_with_pytorchs_products(Net().eval(), torch.randn(1, 8, 12, 12), tmp_path)


def test_keep_picks_the_convolutions_onednn_computes():
    from torch_wm_backend.lower.convolutions import to_onednn
    from torch_wm_backend.lower.freeze import lift_weights
    from torch_wm_backend.lower.importer import imported

    torch.manual_seed(0)
    model, x = Net().eval(), torch.randn(1, 8, 12, 12)
    gm, args, weights = exported(model, (x,))
    nhwc, num_input, _ = imported(gm, args, weights, "NHWC")
    seen = []

    def one_by_one(geometry):
        seen.append(geometry)
        return geometry["weight"][2:] == [1, 1] and geometry["groups"] == 1

    mod = lift_weights(to_onednn(nhwc, num_input, keep=one_by_one), num_input)
    assert len(seen) == 4 and {tuple(g["stride"]) for g in seen} == {(1, 1), (2, 2)}
    main = str(mod["main"])
    assert main.count(CONV + '"') == 2  # the 1x1 convolutions: point and down
    assert len(re.findall(r"call_tir\(conv2d\w*,", main)) == 2  # TVM's: the 3x3 and the depthwise
    kernel = kernel_for(build(mod, cpu_target()), torch.device("cpu"), weights)
    kernel.matmul = "pytorch"
    with torch.no_grad():
        torch.testing.assert_close(kernel(args)[0], model(x), atol=1e-5, rtol=1e-5)
