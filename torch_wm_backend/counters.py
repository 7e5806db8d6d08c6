"""Counters a user reads after compiling: ``torch_wm_backend.stats()``."""
from __future__ import annotations

import threading
from collections import Counter

_lock = threading.Lock()
_INTS = (
    "graphs_compiled",
    "subgraphs_compiled",
    "subgraphs_failed",  # TVM could not lower or build them: they run in PyTorch
    "subgraphs_wrong",  # TVM built them but its values differed from PyTorch's: PyTorch runs
    "nodes_lowered",
    "nodes_eager",
    "tasks_tuned",
    "trials_measured",
    "trials_failed",  # measured candidates that failed to build or run, discarded
    "tuning_failures",
    "kernel_calls",  # TVM kernels run (each call of a compiled subgraph)
    "weights_prepared",  # inference weights lifted and prepared (again after they changed)
    "prepared_weight_bytes",  # memory the prepared copies of weights hold now
    "context_kept_tvm",  # subgraphs the selection runs in TVM (select/), cached choices included
    "context_kept_eager",
    "graphs_kept_compiled",  # inference graphs whose compiled form beat Dynamo's graph in PyTorch
    "graphs_kept_eager",
    "graphs_one_module",  # of graphs_kept_compiled: those that run as one TVM module (one VM call)
    "modules_pytorch_products",  # modules compiled whose matrix products PyTorch computes
    "cuda_graph_modules",  # modules built whose static kernel launches TVM replays as CUDA graphs
    "tuned_wrong",  # tuned kernels whose values differed from PyTorch: default schedules used
    "cache_hits",
    "cache_misses",
    "cache_bypasses",
    # the world model's per-task state (world_model/state.py): predict() extracts PerStoreFeature
    # once per task (a miss), never per candidate
    "wm_feature_extractions",
    "wm_task_info_hits",
    "wm_task_info_misses",
    # the world model's screened search (world_model/search.py): traces scored unbuilt, and
    # traces replayed into programs
    "wm_search_scored",
    "wm_search_built",
)
_counts: Counter = Counter()
_eager_ops: Counter = Counter()


def bump(name: str, n: int = 1) -> None:
    assert name in _INTS, name
    with _lock:
        _counts[name] += n


def add_eager_ops(names) -> None:
    with _lock:
        _eager_ops.update(names)


def stats() -> dict:
    """A snapshot: integer counters plus ``eager_ops``, the ATen ops left to PyTorch."""
    with _lock:
        out = {name: _counts[name] for name in _INTS}
        out["eager_ops"] = sorted(_eager_ops)
    return out


def reset_stats() -> None:
    with _lock:
        _counts.clear()
        _eager_ops.clear()
