"""One op TVM cannot lower never fails a model; strict=True names every such op at once."""
import logging

import pytest
import torch

import torch_wm_backend
from conftest import untuned


class WithUnsupported(torch.nn.Module):
    """Linear layers around ops TVM's importer does not translate (digamma, erfinv)."""

    def __init__(self):
        super().__init__()
        self.a = torch.nn.Linear(8, 8)
        self.b = torch.nn.Linear(8, 8)

    def forward(self, x):
        h = torch.sigmoid(self.a(x)) * 0.5 + 0.25
        h = torch.special.erfinv(h) + torch.digamma(h + 1.0)
        return self.b(torch.relu(h))


def test_unsupported_op_runs_in_pytorch_and_matches(caplog):
    model = WithUnsupported().eval()
    x = torch.randn(4, 8)
    with caplog.at_level(logging.INFO, logger="torch_wm_backend"), torch.no_grad():
        actual = torch.compile(model, backend="tvm_wm", options=untuned())(x)
        expected = model(x)
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-5)
    stats = torch_wm_backend.stats()
    assert "erfinv.default" in stats["eager_ops"] and "digamma.default" in stats["eager_ops"]
    assert stats["nodes_lowered"] > 0 and stats["subgraphs_compiled"] >= 2
    assert stats["subgraphs_failed"] == 0 and stats["kernel_calls"] >= 2
    lines = [r.message for r in caplog.records if "left to PyTorch" in r.message]
    assert len(lines) == 1 and "erfinv.default" in lines[0]


def test_strict_raises_one_error_naming_every_unsupported_op():
    model = WithUnsupported().eval()
    compiled = torch.compile(model, backend="tvm_wm", options=untuned(strict=True))
    with pytest.raises(torch._dynamo.exc.BackendCompilerFailed) as info:
        compiled(torch.randn(4, 8))
    err = info.value.inner_exception
    assert isinstance(err, torch_wm_backend.UnsupportedOpsError)
    assert err.ops == ["digamma.default", "erfinv.default"]
    assert "digamma.default" in str(err) and "erfinv.default" in str(err)


def test_tvm_failure_inside_a_subgraph_falls_back(monkeypatch):
    from torch_wm_backend import pipeline

    def broken(*args, **kwargs):
        raise RuntimeError("simulated TVM build failure")

    monkeypatch.setattr(pipeline, "build", broken)
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU())
    x = torch.randn(2, 8)
    with torch.no_grad():
        actual = torch.compile(model, backend="tvm_wm", options=untuned())(x)
    torch.testing.assert_close(actual, model(x))
    assert torch_wm_backend.stats()["subgraphs_failed"] >= 1
