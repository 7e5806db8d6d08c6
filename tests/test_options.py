"""Options: parsed into one frozen Settings; bad keys and values are errors that say what is valid."""
import dataclasses

import pytest
import torch

from torch_wm_backend import OptionError, Settings
from torch_wm_backend.settings import MAX_AUTOTUNE_TRIALS


def test_unknown_option_names_the_valid_keys():
    with pytest.raises(OptionError) as info:
        Settings.from_options({"trails": 3})
    assert "trails" in str(info.value) and "trials" in str(info.value) and "cost_model" in str(info.value)


@pytest.mark.parametrize("options", [
    {"trials": "8"}, {"trials": True}, {"trials": -1}, {"cost_model": "ansor"}, {"strict": 1},
    {"runner": {"rpc": {"tracker": "nohost"}}}, {"time_budget_s": 0},
])
def test_bad_values_raise(options):
    with pytest.raises(OptionError):
        Settings.from_options(options)


def test_settings_are_frozen_and_max_autotune_raises_the_budget(monkeypatch):
    monkeypatch.setenv("TVM_WM_CACHE_DIR", "/tmp/somewhere")
    s = Settings.from_options({"seed": 3}, mode="max-autotune")
    assert s.trials == MAX_AUTOTUNE_TRIALS and s.time_budget_s is None and s.seed == 3
    assert s.cache_dir == "/tmp/somewhere"
    assert Settings.from_options({"cache_dir": None}).cache_dir is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.trials = 1


def test_unknown_option_fails_torch_compile():
    compiled = torch.compile(torch.nn.Linear(2, 2), backend="tvm_wm", options={"bogus": 1})
    with pytest.raises(torch._dynamo.exc.BackendCompilerFailed) as info:
        compiled(torch.randn(1, 2))
    assert isinstance(info.value.inner_exception, OptionError)


def test_an_unknown_layout_is_refused():
    with pytest.raises(OptionError, match="layout"):
        Settings.from_options({"layout": "NCWH"})


def test_an_unknown_matmul_is_refused_and_the_choice_is_part_of_the_cache_key():
    with pytest.raises(OptionError, match="matmul"):
        Settings.from_options({"matmul": "mkl"})
    assert Settings.from_options({"matmul": "pytorch"}).artifact_key()["matmul"] == "pytorch"
