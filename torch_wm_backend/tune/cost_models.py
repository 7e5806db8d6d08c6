"""The cost models a user can pick: the world model (default), XGBoost, random, or the world model
with XGBoost learning each task beside it (``wm+xgb``: world_model/blend.py weighs the two)."""
from __future__ import annotations

from tvm.s_tir import meta_schedule as ms

from ..errors import TvmWmError


def create(name: str, target, num_cores: int, **options):
    """``options``: the world model's (WorldModelCostModel's keywords: online_steps, prior_weight,
    online, weights)."""
    if options and name not in ("wm", "wm+xgb"):
        raise TvmWmError(f"cost model {name!r} takes no options, not {sorted(options)}")
    if name in ("wm", "wm+xgb"):
        from ..world_model import create_cost_model

        if name == "wm+xgb":
            options = {**options, "online": "blend", "companion": _xgb(num_cores)}
        return create_cost_model(target, **options)
    if name == "xgb":
        return _xgb(num_cores)
    if name == "random":
        return ms.CostModel.create("random")
    raise TvmWmError(f"unknown cost model {name!r}")


def _xgb(num_cores: int):
    try:
        import xgboost  # noqa: F401
    except ImportError as err:
        raise TvmWmError(
            "cost_model='xgb' and 'wm+xgb' need xgboost: "
            "pip install 'torch_wm_backend[bench]' "
            "(or xgboost), or use cost_model='wm'"
        ) from err
    # MetaSchedule's default waits for 100 measurements before its first prediction (random
    # until then): a task tuned with 64 trials alone would never use the model. Learn from the
    # first measured round instead.
    return ms.CostModel.create("xgb", num_tuning_cores=num_cores, tree_method="auto",
                               num_warmup_samples=0)
