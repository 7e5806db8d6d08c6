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
    from torch_wm_backend.cache import store_for
    from torch_wm_backend.tune import tasks

    store_for.cache_clear()
    tasks._IN_MEMORY.clear()
    yield
