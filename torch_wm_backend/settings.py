"""The one configuration object. ``torch.compile(..., options={...})`` is parsed here, and only here;
environment variables are read here too."""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field, fields
from typing import Any, Optional, Union

from .errors import OptionError

DEFAULT_TRIALS = 8  # per task on a first run: a few minutes for a CNN on 2 cores, cached afterwards
MAX_AUTOTUNE_TRIALS = 64  # torch.compile(mode="max-autotune"): the paper's budget per subgraph
DEFAULT_TIME_BUDGET_S = 600.0  # caps the first run; max-autotune lifts it
COST_MODELS = ("wm", "xgb", "random", "wm+xgb")
LAYOUTS = ("auto", "NCHW", "NHWC")
MATMULS = ("auto", "tvm", "pytorch")
CACHE_ENV = "TVM_WM_CACHE_DIR"
TVM_THREADS_ENV = "TVM_NUM_THREADS"  # TVM's own; threads.py writes it unless the user did
LOG_ENV = "TVM_WM_LOG"  # debug / info / warning: the backend's log level (logs.py)
_DEFAULT = "default"  # cache_dir sentinel: resolve through the environment, then platformdirs


@dataclass(frozen=True)
class Settings:
    """Every option of the backend.

    trials: measured candidates per tuning task, pooled over a graph's tasks (tune/tuner.py); 0
        builds untuned default schedules.
    time_budget_s: wall-clock cap over all tuning of one graph (None: no cap).
    cost_model: how MetaSchedule ranks candidates: the world model, XGBoost, random, or the world
        model with XGBoost learning each task beside it (world_model/blend.py).
    cache_dir: where tuning records and kernels are kept; None disables the disk cache.
    strict: raise UnsupportedOpsError instead of leaving ops to PyTorch.
    seed: seed of the search.
    eager_guard: time TVM against PyTorch, per subgraph in the model and per graph, and keep the
        faster (select/); False runs every kernel TVM built correctly.
    runner: where candidates are measured: None (this machine) or {"rpc": {"tracker": "host:port",
        "key": "..."}}.
    layout: "NCHW" keeps PyTorch's layout; "NHWC" converts the 2-D convolutions of a whole-graph
        inference module to channels-last inside TVM (Relax ConvertLayout: activations transposed
        once at the module's edges, weights to HWIO — output channels innermost, the loop a
        channels-last kernel vectorizes — once when they are prepared); "auto", the default, is
        "NHWC" for a graph with 2-D convolutions on the CPU and "NCHW" elsewhere
        (lower/importer.py).
    weight_layouts: let tuning choose the layout of a whole-graph inference module's weights
        (MetaSchedule's RewriteLayout; the layouts are changed once, when the weights are prepared).
        Off by default: it slows the search about twice and its kernels were not faster throughout
        (benchmarks/results/layout_rewrite.md).
    matmul: who computes the float32 matrix products of a whole-graph inference module on the CPU:
        "tvm" (tuned kernels), "pytorch" (PyTorch's products called from inside the TVM module —
        MKL's or oneDNN's on weights packed once, ``torch.matmul`` for the others, and in a
        channels-last module oneDNN's convolutions on packed weights with the batch norm, bias,
        residual add and ReLU/ReLU6 after them folded in — with everything else still TVM's; their
        tuning is skipped), or "auto", the default: both modules are built and the faster in a race
        is kept (pipeline.py). With "tvm", a CNN tuned a few trials per task ran slower than eager
        and PyTorch ran instead, while its module with oneDNN's convolutions has none of them to
        tune (ResNet-50's ran ×1.41 of eager, benchmarks/results/e2e_intel_t32_onednn.md).
        Other modules and devices keep TVM's products. PyTorch's products pay only with TVM's idle
        workers asleep, as the backend sets them unless the user chose (threads.py).
    """

    trials: int = DEFAULT_TRIALS
    time_budget_s: Optional[float] = DEFAULT_TIME_BUDGET_S
    cost_model: str = "wm"
    cache_dir: Optional[str] = _DEFAULT
    strict: bool = False
    seed: int = 0
    eager_guard: bool = True
    runner: Optional[dict] = None
    layout: str = "auto"
    weight_layouts: bool = False
    matmul: str = "auto"

    def __post_init__(self):
        if self.trials < 0:
            raise OptionError(f"trials must be >= 0, got {self.trials}")
        if self.cost_model not in COST_MODELS:
            raise OptionError(f"cost_model must be one of {COST_MODELS}, got {self.cost_model!r}")
        if self.time_budget_s is not None and self.time_budget_s <= 0:
            raise OptionError(f"time_budget_s must be > 0 or None, got {self.time_budget_s}")
        if self.runner is not None:
            _check_runner(self.runner)
        if self.layout not in LAYOUTS:
            raise OptionError(f"layout must be one of {LAYOUTS}, got {self.layout!r}")
        if self.matmul not in MATMULS:
            raise OptionError(f"matmul must be one of {MATMULS}, got {self.matmul!r}")
        if self.cache_dir == _DEFAULT:
            object.__setattr__(self, "cache_dir", default_cache_dir())

    @classmethod
    def from_options(cls, options: Optional[dict] = None, mode: Optional[str] = None) -> "Settings":
        options = dict(options or {})
        valid = {f.name: f for f in fields(cls)}
        unknown = sorted(set(options) - set(valid))
        if unknown:
            raise OptionError(
                f"unknown option(s) {unknown} for backend 'tvm_wm'; valid keys: {sorted(valid)}"
            )
        for key, value in options.items():
            _check_type(key, value, _TYPES[key])
        if mode == "max-autotune" or mode == "max-autotune-no-cudagraphs":
            options.setdefault("trials", MAX_AUTOTUNE_TRIALS)
            options.setdefault("time_budget_s", None)
        elif mode not in (None, "default", "reduce-overhead"):
            raise OptionError(f"unknown mode {mode!r}; use None, 'default' or 'max-autotune'")
        return cls(**options)

    def artifact_key(self) -> dict[str, Any]:
        """The fields that change a compiled artifact, and so belong in its cache key."""
        return {name: getattr(self, name) for name in ARTIFACT_FIELDS}


# Named once: the settings that change what gets built. cache_dir, strict, runner and eager_guard
# (which only chooses between what was built and PyTorch) do not.
ARTIFACT_FIELDS = ("trials", "time_budget_s", "cost_model", "seed", "layout", "weight_layouts",
                   "matmul")

_TYPES: dict[str, tuple] = {
    "trials": (int,),
    "time_budget_s": (int, float, type(None)),
    "cost_model": (str,),
    "cache_dir": (str, os.PathLike, type(None)),
    "strict": (bool,),
    "seed": (int,),
    "eager_guard": (bool,),
    "runner": (dict, type(None)),
    "layout": (str,),
    "weight_layouts": (bool,),
    "matmul": (str,),
}


def _check_type(key: str, value: Any, types: tuple) -> None:
    # bool is an int in Python; trials=True is a mistake, not 1
    if isinstance(value, bool) and bool not in types:
        ok = False
    else:
        ok = isinstance(value, types)
    if not ok:
        names = " or ".join("None" if t is type(None) else t.__name__ for t in types)
        raise OptionError(f"option {key!r} must be {names}, got {type(value).__name__} {value!r}")


def _check_runner(runner: dict) -> None:
    if set(runner) != {"rpc"} or not isinstance(runner["rpc"], dict):
        raise OptionError("runner must be {'rpc': {'tracker': 'host:port', 'key': '...'}}")
    rpc = runner["rpc"]
    missing = {"tracker", "key"} - set(rpc)
    if missing:
        raise OptionError(f"runner['rpc'] lacks {sorted(missing)}")
    host, _, port = str(rpc["tracker"]).rpartition(":")
    if not host or not port.isdigit():
        raise OptionError(f"runner['rpc']['tracker'] must be 'host:port', got {rpc['tracker']!r}")


def default_cache_dir() -> Optional[str]:
    env = os.environ.get(CACHE_ENV)
    if env is not None:
        return env or None  # TVM_WM_CACHE_DIR= (empty) disables the cache
    import platformdirs

    return platformdirs.user_cache_dir("torch_wm_backend", appauthor=False)


def _user_tvm_threads_at_import() -> Optional[int]:
    value = os.environ.get(TVM_THREADS_ENV, "")
    return int(value) if value.isdigit() and int(value) > 0 else None


_USER_TVM_THREADS = _user_tvm_threads_at_import()  # read before threads.py writes the variable


def user_tvm_threads() -> Optional[int]:
    """``TVM_NUM_THREADS`` as the user set it before importing the backend, or None."""
    return _USER_TVM_THREADS


def replace(settings: Settings, **changes) -> Settings:
    return dataclasses.replace(settings, **changes)


def log_level() -> Optional[int]:
    """``TVM_WM_LOG`` as a ``logging`` level, or None when unset; a bad value is an error."""
    import logging

    value = os.environ.get(LOG_ENV, "").strip().upper()
    if not value:
        return None
    if value not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise OptionError(f"{LOG_ENV} must be debug, info, warning or error, got {value.lower()!r}")
    return getattr(logging, value)
