"""What a tuned compile prints: little by default, no MetaSchedule tables at INFO, all at debug.
Counted in a child process, with what TVM's C++ writes to the standard error."""
import os
import subprocess
import sys

SCRIPT = r"""
import logging, sys, tempfile, torch
import torch_wm_backend

def compile_once(channels):  # one task, one trial, no race: the least that tunes
    model = torch.nn.Sequential(torch.nn.Conv2d(3, channels, 3, padding=1), torch.nn.ReLU()).eval()
    x = torch.randn(1, 3, 12, 12)
    options = {"trials": 1, "cost_model": "random", "cache_dir": tempfile.mkdtemp(),
               "eager_guard": False}
    with torch.no_grad():
        torch.compile(model, backend="tvm_wm", options=options)(x)
    assert torch_wm_backend.stats()["trials_measured"] > 0

def section(name):  # on both streams, flushed: the test splits the output here
    for stream in (sys.stdout, sys.stderr):
        print(f"=== {name}", file=stream, flush=True)

section("info")
logging.basicConfig(level=logging.INFO)  # what many programs set
compile_once(5)
section("debug")
logging.getLogger("torch_wm_backend").setLevel(logging.DEBUG)
compile_once(6)
section("end")
"""


def sections(text: str) -> dict:
    out, name = {}, None
    for line in text.replace("\r", "\n").splitlines():
        if line.startswith("=== "):
            name = line[4:]
            continue
        if name and line.strip() and "%|" not in line:  # progress-bar redraws are one bar
            out.setdefault(name, []).append(line)
    return out


def test_a_tuned_compile_is_quiet_unless_asked(tmp_path):
    script = tmp_path / "compile.py"
    script.write_text(SCRIPT)
    env = {k: v for k, v in os.environ.items() if k != "TVM_WM_LOG"}
    proc = subprocess.run([sys.executable, str(script)], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, env=env, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:]
    seen = sections(proc.stdout)
    info, debug = seen.get("info", []), seen.get("debug", [])
    # what the default level prints: warnings, errors, and what bypasses logging (C++, prints)
    default = [line for line in info if not line.startswith(("INFO:", "DEBUG:"))]
    assert len(default) <= 15, default
    assert len(info) <= 40 and not any("task_scheduler" in line for line in info), info
    assert any("task_scheduler" in line for line in debug)  # MetaSchedule's tables, as asked


def test_a_bad_log_level_is_named(monkeypatch):
    import pytest

    from torch_wm_backend import OptionError
    from torch_wm_backend.settings import log_level

    monkeypatch.setenv("TVM_WM_LOG", "loud")
    with pytest.raises(OptionError, match="TVM_WM_LOG must be debug, info, warning or error"):
        log_level()
    monkeypatch.setenv("TVM_WM_LOG", "Debug")
    assert log_level() == 10
