"""erf, GELU and softmax become kernels that compute erf and exp themselves: no call of the C
library's scalar erf or exp per element (TVM's own rules), and the same values as PyTorch's."""
import torch

from torch_wm_backend.build import build
from torch_wm_backend.lower import to_relax
from torch_wm_backend.lower.freeze import exported
from torch_wm_backend.lower.target import cpu_target
from torch_wm_backend.runtime.kernel import kernel_for


class GeluErf(torch.nn.Module):
    def forward(self, x):
        return torch.nn.functional.gelu(x) + torch.erf(x) + torch.softmax(x * 8, -1)


def assembly(executable) -> str:
    mod = executable.mod
    return "".join(m.inspect_source("asm") for m in [mod, *mod.imports]
                   if m.kind == "llvm" or "asm" in getattr(m, "format", ""))


def test_gelu_erf_and_softmax_kernels_compute_erf_and_exp_themselves_and_match_pytorch():
    x = torch.linspace(-6, 6, 4096).reshape(4, 1024)
    gm, args, _ = exported(GeluErf(), (x,))
    executable = build(to_relax(gm, args), cpu_target())
    asm = assembly(executable)
    assert "vfmadd" in asm or "vmulps" in asm  # the kernels' own code is there...
    assert "erff" not in asm and "expf" not in asm  # ...and calls no scalar erf or exp
    out = kernel_for(executable, torch.device("cpu"))(args)[0]
    torch.testing.assert_close(out, GeluErf()(x), atol=2e-6, rtol=1e-5)
