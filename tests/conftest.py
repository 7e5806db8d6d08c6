import pytest
import torch

import torch_wm_backend


@pytest.fixture(autouse=True)
def fresh_state():
    torch._dynamo.reset()
    torch_wm_backend.reset_stats()
    torch.manual_seed(0)
    yield
    torch._dynamo.reset()


def untuned(**extra):
    """Options that force every subgraph through TVM, so tests check TVM's results."""
    return {"trials": 0, "cache_dir": None, "eager_guard": False, **extra}


@pytest.fixture(autouse=True)
def fresh_tuning_memory():
    """Each test starts with no tuning remembered in this process (in-memory databases, marks)."""
    from torch_wm_backend import pipeline
    from torch_wm_backend.tune import tasks

    pipeline.store_for.cache_clear()
    tasks._SEARCHED.clear()
    yield


@pytest.fixture(autouse=True)
def compiled_graphs_beat_eager(request, monkeypatch):
    """The last race, whole compiled graph against eager PyTorch (runtime/versus_eager.py), is
    decided by timing: tests of other things see the compiled graph win it, uncached, so what they
    check runs. Its own tests (marked versus_eager) race for real."""
    if "versus_eager" in request.keywords:
        return
    from torch_wm_backend.runtime import guard, versus_eager

    monkeypatch.setattr(versus_eager, "_race", lambda *a: guard.Timing(0.0, 1.0, busy=True))
