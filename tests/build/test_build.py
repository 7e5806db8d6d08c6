"""Build: a kernel without a tuning record still runs on every core."""
import torch
import tvm
from torch.fx.experimental.proxy_tensor import make_fx

from torch_wm_backend.build import build
from torch_wm_backend.build.cpu_default import schedule_unscheduled
from torch_wm_backend.lower import to_relax
from torch_wm_backend.lower.target import cpu_target
from torch_wm_backend.runtime import Kernel
from torch_wm_backend.tune.tasks import prepare


def conv_relu():
    args = [torch.randn(1, 8, 16, 16), torch.randn(8, 8, 3, 3), torch.randn(8)]

    def f(x, w, b):
        return torch.relu(torch.ops.aten.convolution(x, w, b, [1, 1], [1, 1], [1, 1], False, [0, 0], 1))

    return f, args, to_relax(make_fx(f)(*args), args)


def _loops(func) -> str:
    return func.script()


def test_an_untuned_kernels_loops_are_parallel_and_vectorized():
    _, _, mod = conv_relu()
    target = cpu_target(2)
    scheduled = schedule_unscheduled(target)(prepare(mod))
    funcs = [f for f in scheduled.functions.values() if isinstance(f, tvm.tirx.PrimFunc)]
    assert funcs
    for func in funcs:
        assert "T.parallel(" in _loops(func), func
        assert func.attrs["tirx.is_scheduled"]
    assert any("T.vectorized(" in _loops(f) for f in funcs)


def test_an_untuned_build_is_fused_parallel_and_right():
    f, args, mod = conv_relu()
    executable = build(mod, cpu_target(2))
    source = executable.mod.imports[0].inspect_source("ll")
    assert "TVMBackendParallelLaunch" in source  # the kernel launches TVM's thread pool
    kernel = Kernel(executable, torch.device("cpu"))
    (got,) = kernel(args)
    torch.testing.assert_close(got, f(*args), atol=1e-4, rtol=1e-4)
