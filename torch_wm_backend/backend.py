"""The Dynamo backend: options -> ATen graphs (aot_autograd) -> partition -> TVM subgraphs ->
select (TVM or PyTorch, timed)."""
from __future__ import annotations

import dataclasses
import functools
import logging

import torch

from . import counters, explanation, threads
from .cache import cache_key, store_for
from .decompositions import decompositions
from .errors import UnsupportedOpsError
from .lower import target_for
from .partition import eager_op_names, inline, partition
from .partition.partitioner import views_to_reshapes
from .pipeline import compile_subgraph, load_kernel, pretune_graph
from .runtime import TvmSubgraph
from .runtime.subgraph import call_kernel, device_of
from .select import AtenGraph, InferenceGraph, Selection, Timer
from .select.graphs import TrainingGraph, builds_autograd, choose_for_training
from .settings import Settings
from .tune.budget import Budget

log = logging.getLogger("torch_wm_backend")
TIMER = Timer()  # the wall clock; tests hand ``tvm_wm`` a timer of their own


def compile_aten_graph(gm: torch.fx.GraphModule, settings: Settings, kind: str, on_first_call=None,
                       weights: tuple = ()):
    """Partition one ATen graph; TVM subgraphs compile lazily, on their first real inputs.
    ``weights``: positions of the inputs that are the model's weights (inference graphs)."""
    if settings.strict:
        missing = eager_op_names(gm)
        if missing:
            raise UnsupportedOpsError(missing)
    original = _copy(gm)  # partition() rewrites gm
    parts = partition(gm)
    budget = Budget(settings.time_budget_s)
    compile = functools.partial(compile_subgraph, settings=settings, budget=budget)
    eager = {name: getattr(parts.graph_module, name) for name in parts.subgraph_names}
    one_module = (kind == "inference" and settings.eager_guard and len(eager) > 1
                  and not eager_op_names(original))
    # tuning goes to the one module where there is one (it holds every kernel, with weights
    # folded); the partitioned graph stays a candidate with default schedules
    compile_part = functools.partial(compile_subgraph, settings=dataclasses.replace(settings, trials=0),
                                     budget=budget) if one_module else compile
    modules = []
    for name, sub in eager.items():
        module = TvmSubgraph(f"{kind}/{name}", sub, compile_part)
        setattr(parts.graph_module, name, module)
        modules.append(module)
    counters.bump("graphs_compiled")
    counters.bump("nodes_lowered", parts.nodes_lowered)
    counters.bump("nodes_eager", parts.nodes_eager)
    counters.add_eager_ops(parts.eager_ops)
    if parts.eager_ops:
        log.info("tvm_wm %s graph: %d ATen nodes to TVM in %d subgraphs; left to PyTorch: %s",
                 kind, parts.nodes_lowered, len(parts.subgraph_names), ", ".join(parts.eager_ops))
    if not eager or (settings.trials == 0 and not settings.eager_guard):
        explanation.graph_compiled(kind, parts, original, None, settings)
        return parts.graph_module
    targets = {m.name: target for target, m in zip(eager, modules)}
    graph = parts.graph_module
    whole = None
    if one_module:
        placeholders = sum(n.op == "placeholder" for n in original.graph.nodes)
        frozen = weights if weights and max(weights) < placeholders else ()
        whole = TvmSubgraph(f"{kind}/whole", _copy(original), compile, frozen)  # one VM call
        views_to_reshapes(whole.eager)

    def with_tvm(names: set):  # only these subgraphs called, the others' ops inline
        return inline(graph, {t for n, t in targets.items() if n not in names},
                      body=lambda module: module.eager)

    def prepare():
        if settings.trials > 0:
            try:
                todo = ({"whole": (whole.eager, whole.weights)} if whole is not None
                        else {n: (g, ()) for n, g in eager.items()})
                pretune_graph(todo, settings, budget, f"{kind} graph")
            except Exception as err:  # each subgraph still tunes or falls back on its first call
                log.warning("tvm_wm: tuning the %s graph failed (%s); continuing", kind, err)

    aten = AtenGraph(graph, original, modules, with_tvm, prepare,
                     on_first_call if settings.eager_guard else None, whole)
    explanation.graph_compiled(kind, parts, original, aten, settings)
    return aten


def _copy(gm: torch.fx.GraphModule) -> torch.fx.GraphModule:
    graph = torch.fx.Graph()
    graph.output(graph.graph_copy(gm.graph, {}))
    return torch.fx.GraphModule(gm, graph)


def _selection(name: str, gm, args, settings: Settings, timer) -> Selection:
    """The choice for ``gm`` on ``args``, keyed like its kernels; uncached without a disk cache."""
    store, parts = None, None
    try:
        device = device_of([a for a in args if isinstance(a, torch.Tensor)])
        store = store_for(settings.cache_dir)
        parts = cache_key(gm, list(args), target_for(device), settings) if store.enabled else None
    except Exception as err:  # no key (e.g. an unsupported device): decide, do not store
        log.debug("%s: the choice will not be cached (%s)", name, err)
    return Selection(name, store if parts is not None else None, parts, timer)


def _train_choice(kind: str, settings: Settings, timer, training=None):
    def on_first_call(graph: AtenGraph, args: list):
        selection = _selection(f"tvm_wm {kind} graph", graph.original, args, settings, timer)
        device = device_of([a for a in args if isinstance(a, torch.Tensor)])
        choose_for_training(graph, args, selection, device,
                            training.verdict(kind) if training is not None else None)

    return on_first_call


def _direct_whole(selection: Selection, settings: Settings, example_inputs):
    """The whole module, as the cached choice made it, called on Dynamo's inputs: aot_autograd's
    tracing and partitioning skipped (select/graphs.py InferenceGraph._direct says when it can)."""
    direct = selection.extra.get("direct")
    if not (selection.cached().whole and direct):
        return None
    device = device_of([a for a in example_inputs if isinstance(a, torch.Tensor)])
    kernel = load_kernel(direct["kernel"], settings, device, tuple(direct["weights"]))
    if kernel is None:
        return None
    as_tuple = direct["tuple"]
    counters.bump("graphs_kept_compiled")
    counters.bump("graphs_one_module")
    explanation.skipped_tracing(runs="TVM, the whole graph as one module (cached choice)")

    def run(*args):
        outs = call_kernel(kernel, args)
        return tuple(outs) if as_tuple else outs

    return torch._dynamo.disable(run)


def weight_positions(gm: torch.fx.GraphModule) -> tuple:
    """Positions of the graph's inputs that Dynamo took from a module's parameters or buffers."""
    positions = []
    for i, node in enumerate(n for n in gm.graph.nodes if n.op == "placeholder"):
        source = getattr(node.meta.get("grapharg"), "source", None)
        name = source.name if isinstance(getattr(source, "name", None), str) else ""
        if "._parameters[" in name or "._buffers[" in name:
            positions.append(i)
    return tuple(positions)


def tvm_wm(gm: torch.fx.GraphModule, example_inputs, mode=None, options=None, timer=None):
    """``torch.compile(model, backend="tvm_wm", options={...})``. ``timer``: how the selection
    stage measures (the wall clock by default)."""
    from functorch.compile import make_boxed_func
    from torch._dynamo.backends.common import aot_autograd

    settings = Settings.from_options(options, mode)
    threads.sync()
    timer = timer or TIMER
    outer = None
    if settings.eager_guard and not builds_autograd(gm, example_inputs):
        outer = _selection("tvm_wm graph", gm, example_inputs, settings, timer)
        cached = outer.cached()
        if cached is not None and not cached.wins:
            counters.bump("graphs_kept_eager")
            explanation.skipped_tracing()
            return gm.forward  # a warm start of a graph that lost: nothing traced or loaded
        direct = _direct_whole(outer, settings, example_inputs) if cached is not None else None
        if direct is not None:
            return direct  # a warm start of a graph whose one module won: nothing traced
    inference = InferenceGraph(None, gm, outer, lambda args: device_of(
        [a for a in args if isinstance(a, torch.Tensor)])) if outer is not None else None
    weights = weight_positions(gm) if inference is not None else ()
    training = TrainingGraph(None, gm, timer) if settings.eager_guard and inference is None else None

    def compiler(kind):
        hook = inference.adopt if kind == "inference" and inference is not None \
            else _train_choice(kind, settings, timer, training)

        def compile_graph(aten_gm, _inputs):
            frozen = weights if kind == "inference" else ()
            return make_boxed_func(compile_aten_graph(aten_gm, settings, kind, hook, frozen))

        return compile_graph

    backend = aot_autograd(
        fw_compiler=compiler("forward"),
        bw_compiler=compiler("backward"),
        inference_compiler=compiler("inference"),
        decompositions=decompositions(inference=not builds_autograd(gm, example_inputs)),
    )
    compiled = backend(gm, example_inputs)
    chooser = inference or training
    if chooser is None:
        return compiled
    chooser.compiled = compiled

    def run(*args):  # after the first call, the compiled graph or Dynamo's, whichever was faster
        return chooser(*args)

    return torch._dynamo.disable(run)
