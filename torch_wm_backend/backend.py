"""The Dynamo backend: options -> ATen graphs (aot_autograd) -> partition -> TVM subgraphs."""
from __future__ import annotations

import logging

import torch

from . import counters
from .decompositions import decompositions
from .errors import UnsupportedOpsError
from .partition import eager_op_names, inline, partition
from .runtime import TvmSubgraph
from .runtime.versus_eager import VersusEager, eager_won_before
from .settings import Settings
from .tune.budget import Budget

log = logging.getLogger("torch_wm_backend")


def compile_aten_graph(gm: torch.fx.GraphModule, settings: Settings, kind: str):
    """Partition one ATen graph; TVM subgraphs compile lazily, on their first real inputs."""
    if settings.strict:
        missing = eager_op_names(gm)
        if missing:
            raise UnsupportedOpsError(missing)
    original = _copy(gm)  # partition() rewrites gm
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
    if not subgraphs or (settings.trials == 0 and not settings.eager_guard):
        return parts.graph_module
    modules = [getattr(parts.graph_module, name) for name in parts.subgraph_names]
    return _on_first_call(parts.graph_module, original, subgraphs, modules, settings, budget, kind)


def _copy(gm: torch.fx.GraphModule) -> torch.fx.GraphModule:
    graph = torch.fx.Graph()
    graph.output(graph.graph_copy(gm.graph, {}))
    return torch.fx.GraphModule(gm, graph)


def _on_first_call(graph_module, original, subgraphs: dict, modules: list, settings: Settings,
                   budget, kind: str):
    """The graph. Its first call tunes the kernels of all its subgraphs together (outside
    aot_autograd's tracing modes, where the world model's own torch code could not run), runs, and
    then times the graph to choose TVM or PyTorch per subgraph in the model's context; where no
    choice of TVM kernels beats PyTorch, the unpartitioned ``original`` runs from then on."""
    pending = [True]
    current = [graph_module]
    targets = {m.name: target for target, m in zip(subgraphs, modules)}

    def graph_for(names: set):  # only these subgraphs called, the others' ops inline
        return inline(graph_module, {t for n, t in targets.items() if n not in names},
                      body=lambda module: module.eager)

    def run(*args):
        if not pending:
            return current[0](*args)
        pending.clear()
        from .pipeline import choose_in_context, pretune_graph

        if settings.trials > 0:
            try:
                pretune_graph(subgraphs, settings, budget, f"{kind} graph")
            except Exception as err:  # each subgraph still tunes or falls back on its first call
                log.warning("tvm_wm: tuning the %s graph failed (%s); continuing", kind, err)
        out = graph_module(*args)
        if settings.eager_guard:
            try:
                current[0] = choose_in_context(f"{kind} graph", graph_module, modules, list(args),
                                               settings, original, graph_for)
            except Exception as err:  # the per-subgraph choices stand
                log.warning("tvm_wm: timing the %s graph failed (%s); continuing", kind, err)
        return out

    return run


def tvm_wm(gm: torch.fx.GraphModule, example_inputs, mode=None, options=None):
    """``torch.compile(model, backend="tvm_wm", options={...})``."""
    from functorch.compile import make_boxed_func
    from torch._dynamo.backends.common import aot_autograd

    settings = Settings.from_options(options, mode)
    if settings.eager_guard and eager_won_before(gm, example_inputs, settings):
        return gm.forward  # a warm start of a graph that lost its race against eager PyTorch

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
    compiled = backend(gm, example_inputs)
    if not settings.eager_guard:
        return compiled
    guard = VersusEager(compiled, gm, settings)

    def run(*args):  # after the first call, the compiled graph or Dynamo's, whichever was faster
        return guard(*args)

    return torch._dynamo.disable(run)
