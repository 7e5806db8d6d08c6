"""A softmax over rows gets its own CPU schedule: exps once, vector lanes, rows in parallel; not a
tuning task on a CPU; the same values as PyTorch's; left to TVM's rules on a GPU."""
import torch
import tvm
from torch.fx.experimental.proxy_tensor import make_fx

from torch_wm_backend.build import build
from torch_wm_backend.build.build import lower
from torch_wm_backend.build.cpu_softmax import is_row_softmax
from torch_wm_backend.lower import to_relax
from torch_wm_backend.lower.target import cpu_target, cuda_target
from torch_wm_backend.runtime import Kernel
from torch_wm_backend.tune.tasks import extract


def attention_scores(shape=(2, 3, 24, 32)):
    args = [torch.randn(*shape), torch.randn(shape[-1])]

    def f(x, bias):
        return torch.softmax(x * 0.125 + bias, -1) + 1.0

    return f, args, to_relax(make_fx(f)(*args), args)


def _softmax_kernel(mod):
    return next(f for f in mod.functions.values() if is_row_softmax(f))


def test_a_row_softmax_is_scheduled_by_hand_on_the_cpu_and_matches_pytorch():
    f, args, mod = attention_scores()
    kernel = _softmax_kernel(lower(mod, cpu_target(2))).script()
    assert "T.parallel(" in kernel and kernel.count("T.vectorized(") >= 4  # max, exp, sum, quotient
    assert "T_fast_exp[" in kernel  # exps stored once, read by the sum and the quotient
    out = Kernel(build(mod, cpu_target(2)), torch.device("cpu"))(args)[0]
    torch.testing.assert_close(out, f(*args), atol=1e-6, rtol=1e-5)


def test_a_row_softmax_is_no_tuning_task_on_the_cpu_and_is_one_on_a_gpu():
    _, _, mod = attention_scores()
    cpu = [t.task_name for t in extract(mod, cpu_target(2))]
    gpu = [t.task_name for t in extract(mod, cuda_target("sm_80"))]
    assert cpu and not any("softmax" in name for name in cpu), cpu
    assert any("softmax" in name for name in gpu), gpu


def test_a_softmax_over_an_odd_length_or_not_the_last_axis_keeps_tvms_rules():
    for shape, dim in (((2, 3, 7), -1), ((2, 8, 16), 1)):
        args = [torch.randn(*shape)]

        def f(x):
            return torch.softmax(x, dim)  # noqa: B023 (traced now, in this iteration)

        mod = to_relax(make_fx(f)(*args), args)
        built = lower(mod, cpu_target(2))
        assert not any(is_row_softmax(fn) for fn in built.functions.values())
        out = Kernel(build(mod, cpu_target(2)), torch.device("cpu"))(args)[0]
        torch.testing.assert_close(out, f(*args), atol=1e-6, rtol=1e-5)
