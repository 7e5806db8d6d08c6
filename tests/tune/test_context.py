"""The eager guard in the model's context: the whole graph is timed, and never loses to PyTorch."""
import time

import torch

import torch_wm_backend


def two_layers():
    return torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU(), torch.nn.Linear(8, 8)).eval()


def _compile(model, x, options):
    with torch.no_grad():
        compiled = torch.compile(model, backend="tvm_wm", options=options)
        return compiled, compiled(x)


def _fool_the_subgraph_guard(monkeypatch, slow_s=0.01):
    """Every kernel costs ``slow_s`` more than PyTorch, but the per-subgraph guard says TVM."""
    from torch_wm_backend import pipeline
    from torch_wm_backend.runtime import guard, kernel

    real_call = kernel.Kernel.__call__

    def slow_call(self, tensors):
        time.sleep(slow_s)
        return real_call(self, tensors)

    monkeypatch.setattr(kernel.Kernel, "__call__", slow_call)
    monkeypatch.setattr(pipeline, "compare", lambda *a, **k: guard.Timing(0.5, 1.0, busy=False))


def test_the_graph_keeps_pytorch_where_tvm_is_slower_in_context(monkeypatch):
    _fool_the_subgraph_guard(monkeypatch)
    model, x = two_layers(), torch.randn(2, 8)
    compiled, got = _compile(model, x, {"trials": 0, "cache_dir": None})
    stats = torch_wm_backend.stats()
    assert stats["guard_kept_tvm"] >= 1  # fooled, alone
    assert stats["context_kept_tvm"] == 0 and stats["context_kept_eager"] == stats["guard_kept_tvm"]
    calls = []
    from torch_wm_backend.runtime import kernel, subgraph

    monkeypatch.setattr(kernel.Kernel, "__call__", lambda self, t: calls.append("kernel"))
    monkeypatch.setattr(subgraph.TvmSubgraph, "forward", lambda self, *a: calls.append("subgraph"))
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x))
    assert not calls  # later calls run the ATen graph as it was before partitioning
    torch.testing.assert_close(got, model(x))


def test_the_context_choice_is_cached_with_the_graph(tmp_path, monkeypatch):
    from torch_wm_backend.runtime import context

    options = {"trials": 0, "cache_dir": str(tmp_path)}
    model, x = two_layers(), torch.randn(2, 8)
    timed = []
    real_choose = context.choose
    monkeypatch.setattr(context, "choose", lambda *a, **k: timed.append(1) or real_choose(*a, **k))
    monkeypatch.setattr("torch_wm_backend.runtime.guard.BUSY_FRACTION", 1e9)  # never "busy" here
    _compile(model, x, options)
    assert timed == [1]
    first = torch_wm_backend.stats()
    torch._dynamo.reset()
    torch_wm_backend.reset_stats()
    compiled, got = _compile(model, x, options)
    assert timed == [1]  # a warm start applies the cached choice without timing
    torch.testing.assert_close(got, model(x))
    again = torch_wm_backend.stats()
    assert again["context_kept_tvm"] == first["context_kept_tvm"]
    assert again["context_kept_tvm"] + again["context_kept_eager"] >= 1
    assert again["cache_hits"] == first["cache_misses"]  # kernels only: the choice is not counted


def test_a_failure_while_timing_the_graph_keeps_the_subgraph_choices(monkeypatch, caplog):
    from torch_wm_backend.runtime import context

    def broken(*a, **k):
        raise RuntimeError("timer broke")

    monkeypatch.setattr(context, "compare", broken)
    model, x = two_layers(), torch.randn(2, 8)
    compiled, got = _compile(model, x, {"trials": 0, "cache_dir": None})
    torch.testing.assert_close(got, model(x))
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x))
    stats = torch_wm_backend.stats()
    assert stats["context_kept_tvm"] + stats["context_kept_eager"] == 0
    assert any("timing the inference graph failed" in r.message for r in caplog.records)


def test_timing_the_graph_leaves_the_random_state_alone():
    # the first call runs the graph many times, dropout included: it must consume random numbers
    # as one call does, no more
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.Dropout(0.5)).train()
    x = torch.randn(2, 8)
    compiled = torch.compile(model, backend="tvm_wm", options={"trials": 0, "cache_dir": None})
    states = []
    for _ in range(2):  # the first call times the graph, the second does not
        torch.manual_seed(1)
        with torch.no_grad():
            compiled(x)
        states.append(torch.random.get_rng_state())
    stats = torch_wm_backend.stats()
    assert stats["context_kept_tvm"] + stats["context_kept_eager"] >= 1  # it did time the graph
    assert torch.equal(states[0], states[1])
