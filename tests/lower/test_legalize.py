"""erf, GELU and softmax become kernels that compute erf and exp themselves: no call of the C
library's scalar erf or exp per element (TVM's own rules), and values within float32 rounding of
the exact ones (float64), as PyTorch's are. The exact values are the reference, not PyTorch's
float32 ones: those come from whichever implementation PyTorch picks for the host's CPU."""
import torch

from torch_wm_backend.build import build
from torch_wm_backend.lower import to_relax
from torch_wm_backend.lower.freeze import exported
from torch_wm_backend.lower.target import cpu_target
from torch_wm_backend.runtime.kernel import kernel_for


class GeluErfSoftmax(torch.nn.Module):
    def forward(self, x):
        return torch.nn.functional.gelu(x), torch.erf(x), torch.softmax(x * 8, -1)


def assembly(executable) -> str:
    mod = executable.mod
    return "".join(m.inspect_source("asm") for m in [mod, *mod.imports]
                   if m.kind == "llvm" or "asm" in getattr(m, "format", ""))


def test_gelu_erf_and_softmax_kernels_compute_erf_and_exp_themselves_and_are_exact_to_float32():
    x = torch.linspace(-6, 6, 4096).reshape(4, 1024)
    gm, args, _ = exported(GeluErfSoftmax(), (x,))
    executable = build(to_relax(gm, args), cpu_target())
    asm = assembly(executable)
    assert "vfmadd" in asm or "vmulps" in asm  # the kernels' own code is there...
    assert "erff" not in asm and "expf" not in asm  # ...and calls no scalar erf or exp
    outs = kernel_for(executable, torch.device("cpu"))(args)
    exact = GeluErfSoftmax()(x.double())
    pytorch = GeluErfSoftmax()(x)
    for name, out, want, theirs in zip(("gelu", "erf", "softmax"), outs, exact, pytorch):
        # PyTorch's float32 error beside ours, should this fail on some host
        note = (f"{name}: ours {(out.double() - want).abs().max().item():.3g} from exact, "
                f"PyTorch's float32 {(theirs.double() - want).abs().max().item():.3g}")
        torch.testing.assert_close(out.double(), want, atol=2e-6, rtol=1e-5,
                                   msg=lambda m, note=note: f"{m}\n{note}")


def test_an_inference_layer_norm_is_one_kernel_and_training_keeps_its_parts():
    import torch_wm_backend.decompositions as d

    model, x = torch.nn.LayerNorm(64).eval(), torch.randn(2, 8, 64)
    gm, args, weights = exported(model, (x,))
    mod = to_relax(gm, args, weights)
    kernels = [gv.name_hint for gv in mod.functions if gv.name_hint != "main"
               and not gv.name_hint.startswith("main_")]
    assert any("layer_norm" in k for k in kernels), kernels
    assert not any("variance" in k or "mean" in k for k in kernels), kernels
    out = kernel_for(build(mod, cpu_target()), torch.device("cpu"), weights)(args)[0]
    torch.testing.assert_close(out, model(x), atol=1e-5, rtol=1e-5)
    # training reads its mean and rstd: decomposed there, TVM computes them as parts
    aten = torch.ops.aten
    assert aten.native_layer_norm.default in d.decompositions()
    assert aten.native_layer_norm.default not in d.decompositions(inference=True)
