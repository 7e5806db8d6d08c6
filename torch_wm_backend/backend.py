"""The Dynamo backend: options -> ATen graphs (aot_autograd) -> partition -> TVM subgraphs."""
from __future__ import annotations

import logging

import torch

from . import counters
from .decompositions import decompositions
from .errors import UnsupportedOpsError
from .partition import eager_op_names, partition
from .runtime import TvmSubgraph
from .settings import Settings
from .tune.budget import Budget

log = logging.getLogger("torch_wm_backend")


def compile_aten_graph(gm: torch.fx.GraphModule, settings: Settings, kind: str):
    """Partition one ATen graph; TVM subgraphs compile lazily, on their first real inputs."""
    if settings.strict:
        missing = eager_op_names(gm)
        if missing:
            raise UnsupportedOpsError(missing)
    parts = partition(gm)
    budget = Budget(settings.time_budget_s)
    subgraphs = {name: getattr(parts.graph_module, name) for name in parts.subgraph_names}
    for name, eager in subgraphs.items():
        setattr(parts.graph_module, name, TvmSubgraph(f"{kind}/{name}", eager, settings, budget))
    counters.bump("graphs_compiled")
    counters.bump("nodes_lowered", parts.nodes_lowered)
    counters.bump("nodes_eager", parts.nodes_eager)
    counters.add_eager_ops(parts.eager_ops)
    if parts.eager_ops:
        log.info("tvm_wm %s graph: %d ATen nodes to TVM in %d subgraphs; left to PyTorch: %s",
                 kind, parts.nodes_lowered, len(parts.subgraph_names), ", ".join(parts.eager_ops))
    if settings.trials == 0 or not subgraphs:
        return parts.graph_module
    return _tune_on_first_call(parts.graph_module, subgraphs, settings, budget, kind)


def _tune_on_first_call(graph_module, subgraphs: dict, settings: Settings, budget, kind: str):
    """The graph, which tunes the kernels of all its subgraphs together when first called —
    outside aot_autograd's tracing modes, where the world model's own torch code could not run."""
    pending = [True]

    def run(*args):
        if pending:
            pending.clear()
            from .pipeline import pretune_graph

            try:
                pretune_graph(subgraphs, settings, budget, f"{kind} graph")
            except Exception as err:  # each subgraph still tunes or falls back on its first call
                log.warning("tvm_wm: tuning the %s graph failed (%s); continuing", kind, err)
        return graph_module(*args)

    return run


def tvm_wm(gm: torch.fx.GraphModule, example_inputs, mode=None, options=None):
    """``torch.compile(model, backend="tvm_wm", options={...})``."""
    from functorch.compile import make_boxed_func
    from torch._dynamo.backends.common import aot_autograd

    settings = Settings.from_options(options, mode)

    def compiler(kind):
        def compile_graph(aten_gm, _inputs):
            return make_boxed_func(compile_aten_graph(aten_gm, settings, kind))

        return compile_graph

    backend = aot_autograd(
        fw_compiler=compiler("forward"),
        bw_compiler=compiler("backward"),
        inference_compiler=compiler("inference"),
        decompositions=decompositions(),
    )
    return backend(gm, example_inputs)
