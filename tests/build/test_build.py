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


def test_an_untuned_fused_kernel_is_one_loop_nest():
    # a frozen batch norm, a residual add and a ReLU after a convolution's output: five elementwise
    # steps fused into one kernel; its default schedule computes them in one pass over memory,
    # not one loop nest (and one intermediate buffer) per step
    args = [torch.randn(1, 8, 16, 16), torch.randn(1, 8, 16, 16)] + [torch.rand(8) + 0.5 for _ in range(4)]

    def f(y, skip, mean, var, gamma, beta):
        return torch.relu(torch.ops.aten._native_batch_norm_legit_no_training(
            y, gamma, beta, mean, var, 0.1, 1e-5)[0] + skip)

    mod = to_relax(make_fx(f)(*args), args)
    scheduled = schedule_unscheduled(cpu_target(2))(prepare(mod))
    (func,) = [f for gv, f in scheduled.functions.items()
               if isinstance(f, tvm.tirx.PrimFunc) and gv.name_hint.endswith("relu")]
    text = _loops(func)
    assert text.count("T.writes(") == 1, text  # one block writes: the output
    assert "T.parallel(" in text and "T.vectorized(" in text
    executable = build(mod, cpu_target(2))
    (got,) = Kernel(executable, torch.device("cpu"))(args)
    torch.testing.assert_close(got, f(*args), atol=1e-5, rtol=1e-5)


def test_an_untuned_build_is_fused_parallel_and_right():
    f, args, mod = conv_relu()
    executable = build(mod, cpu_target(2))
    source = executable.mod.imports[0].inspect_source("ll")
    assert "TVMBackendParallelLaunch" in source  # the kernel launches TVM's thread pool
    kernel = Kernel(executable, torch.device("cpu"))
    (got,) = kernel(args)
    torch.testing.assert_close(got, f(*args), atol=1e-4, rtol=1e-4)


def _cuda():
    return tvm.target.Target({"kind": "cuda", "arch": "sm_90"})


def test_a_static_gpu_module_replays_its_launches_as_a_cuda_graph():
    # checked on the lowered module: no GPU or CUDA compiler is needed to see the rewrite. Three
    # convolutions with frozen weights: the middle one reads and writes only TVM's memory and a
    # weight, so it is captured; the first reads the call's input, the last writes the output.
    from torch_wm_backend.build.build import lower, uses_cuda_graph

    args = [torch.randn(1, 8, 16, 16)] + [torch.randn(8, 8, 3, 3) for _ in range(3)]

    def f(x, *ws):
        for w in ws:
            x = torch.relu(torch.ops.aten.convolution(x, w, None, [1, 1], [1, 1], [1, 1], False,
                                                      [0, 0], 1))
        return x

    mod = to_relax(make_fx(f)(*args), args, weights=(1, 2, 3))
    assert uses_cuda_graph(mod, _cuda()) and not uses_cuda_graph(mod, cpu_target(2))
    assert "vm.builtin.cuda_graph.run_or_capture" in lower(mod, _cuda()).script()
    assert "cuda_graph" not in lower(mod, cpu_target(2)).script()


def test_a_symbolic_shape_gets_no_cuda_graph():
    from torch_wm_backend.build.build import uses_cuda_graph

    bb = tvm.relax.BlockBuilder()
    n = tvm.tirx.Var("n", "int64")
    x = tvm.relax.Var("x", tvm.relax.TensorType([n, 8], "float32"))
    with bb.function("main", [x]):
        with bb.dataflow():
            y = bb.emit_output(bb.emit(tvm.relax.op.nn.relu(x)))
        bb.emit_func_output(y)
    assert not uses_cuda_graph(bb.get(), _cuda())
