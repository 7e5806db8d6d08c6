"""CUDA: the same models on the GPU. Skipped cleanly where there is none."""
import copy

import pytest
import torch

import torch_wm_backend

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _opts(**extra):
    return {"trials": 0, "cache_dir": None, "eager_guard": False, **extra}


def test_cuda_target_names_the_arch():
    from torch_wm_backend.lower import target_for

    target = target_for(torch.device("cuda"))
    major, minor = torch.cuda.get_device_capability()
    assert target.kind.name == "cuda" and target.attrs["arch"] == f"sm_{major}{minor}"


def test_cnn_inference_on_cuda_stays_on_device():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8),
                                torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(8 * 16 * 16, 4))
    model = model.cuda().eval()
    x = torch.randn(2, 3, 16, 16, device="cuda")
    with torch.no_grad():
        got = torch.compile(model, backend="tvm_wm", options=_opts())(x)
        want = model(x)
    assert got.device == x.device
    torch.testing.assert_close(got, want, atol=1e-3, rtol=1e-3)
    assert torch_wm_backend.stats()["subgraphs_compiled"] >= 1


def test_training_step_on_cuda_matches_eager():
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.GELU(), torch.nn.Linear(32, 4)).cuda()
    reference = copy.deepcopy(model)
    x = torch.randn(8, 16, device="cuda")
    torch.compile(model, backend="tvm_wm", options=_opts())(x).pow(2).mean().backward()
    reference(x).pow(2).mean().backward()
    for p, q in zip(model.parameters(), reference.parameters()):
        torch.testing.assert_close(p.grad, q.grad, atol=1e-4, rtol=1e-3)


def test_kernel_runs_on_the_current_torch_stream():
    model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU()).cuda().eval()
    x = torch.randn(32, 64, device="cuda")
    compiled = torch.compile(model, backend="tvm_wm", options=_opts())
    stream = torch.cuda.Stream()
    with torch.no_grad(), torch.cuda.stream(stream):
        got = compiled(x)
    stream.synchronize()
    torch.testing.assert_close(got, model(x), atol=1e-4, rtol=1e-4)


def test_tuning_on_cuda_with_the_world_model():
    model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU()).cuda().eval()
    x = torch.randn(32, 64, device="cuda")
    with torch.no_grad():
        got = torch.compile(model, backend="tvm_wm", options=_opts(trials=4, cost_model="wm"))(x)
    torch.testing.assert_close(got, model(x), atol=1e-4, rtol=1e-4)
    assert torch_wm_backend.stats()["trials_measured"] > 0


def test_the_selection_times_cuda_subgraphs_in_the_model():
    # the eager guard on (the default): subgraphs timed in the model, with CUDA syncs
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
                                torch.nn.Conv2d(8, 8, 3, padding=1), torch.nn.ReLU()).cuda().eval()
    x = torch.randn(1, 3, 32, 32, device="cuda")
    compiled = torch.compile(model, backend="tvm_wm", options={"trials": 0, "cache_dir": None})
    with torch.no_grad():
        got, again, want = compiled(x), compiled(x), model(x)
    assert got.device == x.device
    torch.testing.assert_close(got, want, atol=1e-3, rtol=1e-3)
    torch.testing.assert_close(again, want, atol=1e-3, rtol=1e-3)
    stats = torch_wm_backend.stats()
    assert stats["subgraphs_compiled"] >= 1
    assert stats["context_kept_tvm"] + stats["context_kept_eager"] == stats["subgraphs_compiled"]
    assert stats["graphs_kept_compiled"] + stats["graphs_kept_eager"] == 1


def test_cuda_kernels_slower_in_the_model_give_way_to_pytorch(monkeypatch):
    import time

    from torch_wm_backend.runtime import Kernel

    real_call = Kernel.__call__
    monkeypatch.setattr(Kernel, "__call__", lambda self, t: time.sleep(0.01) or real_call(self, t))
    model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 8)).cuda().eval()
    x = torch.randn(4, 64, device="cuda")
    with torch.no_grad():
        got = torch.compile(model, backend="tvm_wm", options={"trials": 0, "cache_dir": None})(x)
    torch.testing.assert_close(got, model(x), atol=1e-4, rtol=1e-4)
    stats = torch_wm_backend.stats()
    assert stats["context_kept_tvm"] == 0 and stats["graphs_kept_eager"] == 1


def test_cuda_graph_replay_reads_new_inputs_and_changed_weights():
    # three convolutions, whole graph one module with frozen weights: the middle launches replay
    # as a CUDA graph; new input memory, an input written in place and a weight written in place
    # must all show in the result
    model = torch.nn.Sequential(*[torch.nn.Sequential(torch.nn.Conv2d(8, 8, 3, padding=1),
                                                      torch.nn.ReLU()) for _ in range(3)])
    model = model.cuda().eval()
    compiled = torch.compile(model, backend="tvm_wm", options=_opts())
    with torch.no_grad():
        x = torch.randn(1, 8, 16, 16, device="cuda")
        torch.testing.assert_close(compiled(x), model(x), atol=1e-3, rtol=1e-3)
        other = torch.randn(1, 8, 16, 16, device="cuda")  # other memory
        torch.testing.assert_close(compiled(other), model(other), atol=1e-3, rtol=1e-3)
        x.mul_(-1.0)  # same memory, new values
        torch.testing.assert_close(compiled(x), model(x), atol=1e-3, rtol=1e-3)
        model[1][0].weight.mul_(0.5)  # a captured weight changed in place
        torch.testing.assert_close(compiled(x), model(x), atol=1e-3, rtol=1e-3)
    assert torch_wm_backend.stats()["cuda_graph_modules"] >= 1
