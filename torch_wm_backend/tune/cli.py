"""``tvm-wm tune FILE:FUNCTION``: tune a model ahead of time, into the cache, outside the program
that serves it. ``FUNCTION()`` returns ``(model, example_inputs)``; the model is called once on
them, without gradients, and what was done is printed (``torch_wm_backend.explain``). The serving
program compiles with the same options and its first call is a cache hit."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from ..errors import TvmWmError
from ..settings import COST_MODELS


def register(subparsers) -> None:
    p = subparsers.add_parser("tune", help="tune a model ahead of time into the cache",
                              description=__doc__)
    p.add_argument("target", metavar="FILE:FUNCTION",
                   help="a Python file and a function in it returning (model, example_inputs)")
    p.add_argument("--trials", type=int, default=None, help="per task (the backend's default)")
    p.add_argument("--time-budget-s", type=float, default=None,
                   help="cap on tuning wall time (the backend's default)")
    p.add_argument("--cost-model", default=None, choices=list(COST_MODELS))
    p.add_argument("--cache-dir", default=None, help="the cache (default: the backend's)")
    p.set_defaults(func=run)


def load(target: str):
    """``(model, example_inputs)`` from ``FILE:FUNCTION``."""
    path, sep, name = target.rpartition(":")
    if not sep or not path or not name:
        raise TvmWmError(f"expected FILE:FUNCTION, got {target!r}")
    if not Path(path).is_file():
        raise TvmWmError(f"no such file: {path}")
    spec = importlib.util.spec_from_file_location(Path(path).stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(Path(path).resolve().parent))  # the file's own imports
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.pop(0)
    if not callable(getattr(module, name, None)):
        raise TvmWmError(f"{path} has no function {name!r}")
    built = getattr(module, name)()
    if not (isinstance(built, tuple) and len(built) == 2):
        raise TvmWmError(f"{target}() must return (model, example_inputs)")
    model, inputs = built
    return model, inputs if isinstance(inputs, (tuple, list)) else (inputs,)


def run(args) -> int:
    import torch

    from ..explanation import explain

    model, inputs = load(args.target)
    # the options the serving program passes: they are part of every cache key
    options = {"trials": args.trials, "cost_model": args.cost_model, "cache_dir": args.cache_dir,
               "time_budget_s": args.time_budget_s}
    options = {k: v for k, v in options.items() if v is not None}
    with torch.no_grad():
        explain(model, *inputs, **options)
    return 0
