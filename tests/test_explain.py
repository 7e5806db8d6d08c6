"""explain(): per graph, the ops left to PyTorch and why, the kernels in TVM, and the choice."""
import os
import sys

import torch

import torch_wm_backend
from test_fallback import WithUnsupported

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "select"))
from fake_timer import FakeTimer  # noqa: E402


def test_explain_names_what_stays_in_pytorch_and_why(capsys):
    model, x = WithUnsupported().eval(), torch.randn(4, 8)
    # in place, the first subgraph gains in TVM and the other loses; the one winner wins its race
    timer = FakeTimer(gains=lambda i: 1e-3 if i == 0 else -1e-3, default_win=True)
    with torch.no_grad():
        result = torch_wm_backend.explain(model, x, timer=timer, trials=0, cache_dir=None)
    printed = capsys.readouterr().out
    (graph,) = result.graphs
    assert graph.kind == "inference" and graph.subgraphs == 2
    assert graph.left_to_pytorch == {"digamma.default": "TVM's importer has no translation",
                                     "erfinv.default": "TVM's importer has no translation"}
    assert graph.runs == "TVM for 1 of 2 subgraph(s), PyTorch for the rest"
    sides = {side for _, side, _, _ in graph.per_subgraph}
    assert sides == {"TVM", "PyTorch"}  # the kernel the selection gave to PyTorch is named
    assert graph.kernels and all(k["mflop"] >= 0 for k in graph.kernels)  # the one kernel in TVM
    assert result.stats["kernel_calls"] > 0 and result.stats["subgraphs_failed"] == 0
    assert "erfinv.default" in printed and "TVM for 1 of 2" in printed and "| kernel |" in printed
