"""The cache seen from a user's processes: a second process tunes nothing; four at once tune once."""
import json
import os
import subprocess
import sys

import pytest
import torch

pytestmark = pytest.mark.slow
SCRIPT = os.path.join(os.path.dirname(__file__), "compile_once.py")


def _start(cache_dir, out):
    return subprocess.Popen([sys.executable, SCRIPT, str(cache_dir), str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(proc) -> dict:
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr[-3000:]
    return json.loads(stdout.strip().splitlines()[-1])


def test_second_process_measures_nothing_and_matches(tmp_path):
    cache = tmp_path / "cache"
    cold = _finish(_start(cache, tmp_path / "cold.pt"))
    warm = _finish(_start(cache, tmp_path / "warm.pt"))
    assert cold["trials_measured"] > 0 and cold["cache_misses"] > 0
    assert warm["trials_measured"] == 0 and warm["tasks_tuned"] == 0
    assert warm["cache_hits"] > 0 and warm["cache_misses"] == 0
    assert torch.equal(torch.load(tmp_path / "cold.pt"), torch.load(tmp_path / "warm.pt"))
    records = list((cache / "records").rglob("database_tuning_record.json"))
    assert records and records[0].stat().st_size > 0  # MetaSchedule's JSON database format


def test_four_processes_at_once_tune_once(tmp_path):
    cache = tmp_path / "cache"
    procs = [_start(cache, tmp_path / f"out{i}.pt") for i in range(4)]
    stats = [_finish(p) for p in procs]
    tuned = [s for s in stats if s["trials_measured"] > 0]
    assert len(tuned) == 1, [s["trials_measured"] for s in stats]
    assert sum(s["cache_hits"] for s in stats) >= 3
    outs = [torch.load(tmp_path / f"out{i}.pt") for i in range(4)]
    assert all(torch.equal(outs[0], o) for o in outs[1:])
