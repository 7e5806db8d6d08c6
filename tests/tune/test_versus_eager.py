"""The eager guard's last word: the whole compiled graph races the graph eager PyTorch runs."""
import time

import pytest
import torch

import torch_wm_backend
from torch_wm_backend.runtime import guard

pytestmark = pytest.mark.versus_eager


def _slow_kernels_the_graph_guards_keep(monkeypatch, slow_s=0.01):
    """Every kernel costs ``slow_s`` more than PyTorch, but the per-subgraph and in-context guards
    say TVM: only the race against eager PyTorch can see it."""
    from torch_wm_backend import pipeline
    from torch_wm_backend.runtime import context, kernel

    real_call = kernel.Kernel.__call__
    monkeypatch.setattr(kernel.Kernel, "__call__", lambda self, t: time.sleep(slow_s) or real_call(self, t))
    monkeypatch.setattr(pipeline, "compare", lambda *a, **k: guard.Timing(0.5, 1.0, busy=False))
    monkeypatch.setattr(context, "_gains_in_place", lambda run, subs, *a: {s.name: 1.0 for s in subs})
    monkeypatch.setattr(context, "_race", lambda *a, **k: guard.Timing(0.5, 1.0, busy=False))
    monkeypatch.setattr(guard, "BUSY_FRACTION", 1e9)  # never "busy" here: choices are cached


def _model():
    return torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU(), torch.nn.Linear(8, 8)).eval()


def test_a_compiled_graph_slower_than_eager_gives_way_to_it(monkeypatch, tmp_path):
    from torch_wm_backend.runtime import kernel, versus_eager

    _slow_kernels_the_graph_guards_keep(monkeypatch)
    raced = []
    real_race = versus_eager._race
    monkeypatch.setattr(versus_eager, "_race", lambda *a: raced.append(1) or real_race(*a))
    model, x = _model(), torch.randn(2, 8)
    options = {"trials": 0, "cache_dir": str(tmp_path)}
    with torch.no_grad():
        compiled = torch.compile(model, backend="tvm_wm", options=options)
        torch.testing.assert_close(compiled(x), model(x))
        stats = torch_wm_backend.stats()
        assert stats["context_kept_tvm"] >= 1  # the guards inside were fooled
        assert stats["graphs_kept_eager"] == 1 and stats["graphs_kept_compiled"] == 0
        calls = []
        monkeypatch.setattr(kernel.Kernel, "__call__", lambda self, t: calls.append(1))
        torch.testing.assert_close(compiled(x), model(x))
        assert not calls  # later calls run Dynamo's graph in PyTorch
        # the choice is cached with the graph: a warm start does not race, nor even compile
        torch._dynamo.reset()
        torch_wm_backend.reset_stats()
        torch.testing.assert_close(torch.compile(model, backend="tvm_wm", options=options)(x), model(x))
    assert raced == [1] and torch_wm_backend.stats()["graphs_kept_eager"] == 1
    assert torch_wm_backend.stats()["graphs_compiled"] == 0  # nothing traced, partitioned or loaded


class Counter(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(8, 8)
        self.register_buffer("calls", torch.zeros(()))

    def forward(self, x):
        self.calls += 1
        return self.linear(x).relu()


def test_a_graph_that_writes_its_inputs_runs_once_per_call():
    model, x = Counter().eval(), torch.randn(2, 8)
    compiled = torch.compile(model, backend="tvm_wm", options={"trials": 0, "cache_dir": None})
    with torch.no_grad():
        for _ in range(2):
            torch.testing.assert_close(compiled(x), model.linear(x).relu())
    assert model.calls.item() == 2
    stats = torch_wm_backend.stats()
    assert stats["graphs_kept_compiled"] + stats["graphs_kept_eager"] == 0


def test_training_graphs_are_not_raced():
    model, x = _model().train(), torch.randn(2, 8)
    torch.compile(model, backend="tvm_wm", options={"trials": 0, "cache_dir": None})(x).sum().backward()
    stats = torch_wm_backend.stats()
    assert stats["graphs_kept_compiled"] + stats["graphs_kept_eager"] == 0
    assert stats["context_kept_tvm"] + stats["context_kept_eager"] >= 1  # the guard did run inside
