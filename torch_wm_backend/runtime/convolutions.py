"""The functions a channels-last TVM module calls for a convolution oneDNN computes
(lower/convolutions.py): ``torch_conv_pack`` packs a weight (the batch norm already folded in)
once, with the weights' other preparation; ``torch_conv`` runs PyTorch's
``mkldnn._convolution_pointwise`` on the module's NHWC activation, shared through DLPack and seen by
PyTorch as a channels-last NCHW tensor, and returns PyTorch's channels-last output as NHWC. A JSON
spec says the convolution's geometry, whether a bias and a residual come with the activation, and
the activation oneDNN applies as it writes the output. Registered once, when the runtime is
imported: a module loaded from the disk cache finds them by name."""
from __future__ import annotations

import torch
import tvm_ffi

from .products import PackedWeight, _steps

CONV_PACK = "tvm_wm.torch_conv_pack"
CONV = "tvm_wm.torch_conv"


def _conv_pack(weight, spec) -> PackedWeight:
    s = _steps(str(spec))
    weight = torch.from_dlpack(weight)
    return PackedWeight(torch.ops.mkldnn._reorder_convolution_weight(
        weight, s["padding"], s["stride"], s["dilation"], s["groups"], s["input"]))


def _conv(x, packed: PackedWeight, *rest) -> torch.Tensor:
    """``rest``: [bias] [residual] spec."""
    *tensors, spec = rest
    s = _steps(str(spec))
    tensors = [torch.from_dlpack(t) for t in tensors]
    bias = tensors.pop(0) if s["bias"] else None
    x = torch.from_dlpack(x).permute(0, 3, 1, 2)  # NHWC -> NCHW, channels-last: no copy
    attr, scalars = s["post"]
    geometry = (s["padding"], s["stride"], s["dilation"], s["groups"])
    if s["add"]:
        other = tensors.pop(0).permute(0, 3, 1, 2)
        y = torch.ops.mkldnn._convolution_pointwise.binary(
            x, other, packed.tensor, bias, *geometry, "add", None,
            None if attr == "none" else attr, scalars, None)
    else:
        y = torch.ops.mkldnn._convolution_pointwise(x, packed.tensor, bias, *geometry, attr, scalars, None)
    return y.permute(0, 2, 3, 1).contiguous()  # channels-last already: a view, no copy


tvm_ffi.register_global_func(CONV_PACK, _conv_pack, override=True)
tvm_ffi.register_global_func(CONV, _conv, override=True)
