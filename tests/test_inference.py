"""Inference: each model compiled with tvm_wm matches eager on the same inputs and weights."""
import pytest
import torch

import torch_wm_backend
import zoo
from conftest import untuned

ATOL, RTOL = 1e-4, 1e-4


def _check(model, *args):
    model.eval()
    with torch.no_grad():
        expected = model(*args)
        compiled = torch.compile(model, backend="tvm_wm", options=untuned())
        actual = compiled(*args)
    stats = torch_wm_backend.stats()
    assert stats["subgraphs_failed"] == 0 and stats["kernel_calls"] > 0  # TVM computed it
    return expected, actual


def _tensor(out):
    return out if isinstance(out, torch.Tensor) else out.last_hidden_state


@pytest.mark.parametrize("name", ["mlp", "cnn_bn", "resnet_stage"])
def test_vision_models_match_eager(name):
    model = getattr(zoo, name)()
    x = torch.randn(2, 16) if name == "mlp" else torch.randn(2, 3 if name == "cnn_bn" else 16, 16, 16)
    expected, actual = _check(model, x)
    torch.testing.assert_close(actual, expected, atol=ATOL, rtol=RTOL)
    stats = torch_wm_backend.stats()
    assert stats["subgraphs_compiled"] >= 1
    assert stats["nodes_lowered"] > 0


@pytest.mark.parametrize("name", ["bert", "gpt2"])
def test_transformers_match_eager(name):
    model = getattr(zoo, name)()
    ids = zoo.tokens()
    expected, actual = _check(model, ids)
    torch.testing.assert_close(_tensor(actual), _tensor(expected), atol=ATOL, rtol=RTOL)
    assert torch_wm_backend.stats()["nodes_lowered"] > 0


def test_vit_matches_eager():
    model = zoo.vit()
    pixels = torch.randn(2, 3, 32, 32)
    expected, actual = _check(model, pixels)
    torch.testing.assert_close(_tensor(actual), _tensor(expected), atol=ATOL, rtol=RTOL)
