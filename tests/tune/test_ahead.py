"""Tuning ahead of time: `tvm-wm tune FILE:FUNCTION` in one process, a first call that is a cache hit
and measures nothing in the next."""
import subprocess
import sys

import pytest
import torch

import torch_wm_backend
from torch_wm_backend import TvmWmError
from torch_wm_backend.tune.cli import load

MODEL = """
import torch

def build():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 8))
    return model.eval(), torch.randn(4, 16)
"""


def test_a_process_after_tvm_wm_tune_measures_nothing(tmp_path):
    (tmp_path / "net.py").write_text(MODEL)
    cache = tmp_path / "cache"
    options = ["--trials", "1", "--cost-model", "random", "--cache-dir", str(cache)]
    proc = subprocess.run([sys.executable, "-m", "torch_wm_backend.cli", "tune",
                           f"{tmp_path / 'net.py'}:build", *options],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "inference graph" in proc.stdout and "trial(s) measured" in proc.stdout
    model, (x,) = load(f"{tmp_path / 'net.py'}:build")
    compiled = torch.compile(model, backend="tvm_wm",
                             options={"trials": 1, "cost_model": "random", "cache_dir": str(cache)})
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x), atol=1e-5, rtol=1e-5)
    stats = torch_wm_backend.stats()
    assert stats["trials_measured"] == 0 and stats["tasks_tuned"] == 0
    # kernels are hits; the choice too, unless the race ran on a busy machine (then not stored)
    assert stats["cache_hits"] > 0


def test_tvm_wm_tune_says_what_is_wrong_with_its_argument(tmp_path):
    (tmp_path / "net.py").write_text(MODEL)
    for bad, says in [("net.py", "FILE:FUNCTION"), (f"{tmp_path}/none.py:build", "no such file"),
                      (f"{tmp_path / 'net.py'}:nothing", "no function 'nothing'")]:
        with pytest.raises(TvmWmError, match=says):
            load(bad)
