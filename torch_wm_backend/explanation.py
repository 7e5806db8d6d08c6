"""``torch_wm_backend.explain(model, *example_inputs, **options)``: what the backend made of a model,
per graph — the ops left to PyTorch and why, the TVM kernels that run (FLOPs, best measured latency,
GFLOP/s, trials), and the choice between TVM and PyTorch with the times behind it. Like
``torch._dynamo.explain``, for this backend.

The stages report here only while ``explain`` runs (``_active``); otherwise each report is one
attribute test.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Optional

import torch

from . import counters

_lock = threading.Lock()  # one explain at a time
_active: Optional[list] = None  # the GraphReports of the explain running now


@dataclass
class GraphReport:
    kind: str                    # "inference", "forward", "backward"
    nodes_lowered: int
    nodes_eager: int
    left_to_pytorch: dict        # ATen op -> why it stays in PyTorch
    subgraphs: int               # TVM subgraphs the graph was partitioned into
    graph: object = None         # the select stage's AtenGraph
    settings: object = None
    runs: str = "not decided"    # what runs from now on
    times: str = ""              # the times behind the choice
    per_subgraph: list = field(default_factory=list)  # (name, side, µs in TVM, µs in PyTorch)
    kernels: list = field(default_factory=list)  # rows: kernel, mflop, calls, best_us, gflops, trials

    def __str__(self) -> str:
        lines = [f"{self.kind} graph: {self.nodes_lowered + self.nodes_eager} ATen ops, "
                 f"{self.nodes_lowered} lowered to TVM in {self.subgraphs} subgraph(s)",
                 f"  runs: {self.runs}" + (f" ({self.times})" if self.times else "")]
        for op, why in self.left_to_pytorch.items():
            lines.append(f"  left to PyTorch: {op} — {why}")
        for name, side, tvm_us, torch_us in self.per_subgraph:
            lines.append(f"  subgraph {name}: {side} (in the model: TVM {tvm_us:.1f} µs, "
                         f"PyTorch {torch_us:.1f} µs)")
        if self.kernels:
            from .tune.progress import table

            lines.append(f"  TVM kernels (cost model {self.settings.cost_model}):")
            lines += ["  " + line for line in table(self.kernels).splitlines()]
        return "\n".join(lines)


@dataclass
class Explanation:
    graphs: list                 # GraphReport per ATen graph compiled
    skipped: int                 # graphs whose cached choice was PyTorch: not even traced
    stats: dict                  # torch_wm_backend.stats() of this compile

    def __str__(self) -> str:
        head = (f"tvm_wm: {len(self.graphs)} graph(s) compiled, {self.stats['kernel_calls']} TVM "
                f"kernel call(s), {self.stats['trials_measured']} trial(s) measured")
        if self.skipped:
            head += f"; {self.skipped} graph(s) run as their cached choice says (not traced)"
        return "\n".join([head, *map(str, self.graphs)])


def explain(model, *example_inputs, timer=None, **options) -> Explanation:
    """Compile ``model`` with ``backend="tvm_wm"`` and ``options``, call it once on
    ``example_inputs`` (a forward: no backward is run, nothing of the model's changes), print and
    return what was done. Tuning and the choices are cached as a normal compile's are. ``timer``:
    how choices are timed, as for the backend (the wall clock by default). Resets ``stats()``."""
    result = tune_ahead(model, *example_inputs, timer=timer, **options)
    print(result)
    return result


def tune_ahead(model, *example_inputs, timer=None, **options) -> Explanation:
    """``explain`` without printing: tune, build and choose into the cache now, outside the program
    that serves the model; that program's first call with the same ``options`` is a cache hit
    (``tvm-wm cache export/import`` carries the cache to another machine)."""
    import functools

    from .backend import tvm_wm

    global _active
    backend = functools.partial(tvm_wm, timer=timer) if timer is not None else "tvm_wm"
    with _lock:
        counters.reset_stats()
        _active = []
        try:
            compiled = torch.compile(model, backend=backend, options=dict(options) or None)
            compiled(*example_inputs)
            reports, _active = _active, None
        finally:
            _active = None
        for report in reports:
            report.kernels = _kernels(report)
        stats = counters.stats()
        return Explanation([r for r in reports if r.kind != "skipped"],
                           sum(r.kind == "skipped" for r in reports), stats)


def graph_compiled(kind: str, parts, original, graph, settings) -> None:
    """compile_aten_graph: ``original`` (an ATen graph) was partitioned into ``parts``
    (``graph``: its AtenGraph, or None)."""
    if _active is not None:
        from .partition import eager_reasons

        report = GraphReport(kind, parts.nodes_lowered, parts.nodes_eager, eager_reasons(original),
                             len(parts.subgraph_names), graph, settings)
        if graph is None:
            report.runs = ("PyTorch (nothing to lower)" if not parts.subgraph_names else
                           "TVM for every subgraph (untuned, eager_guard off: no race)")
        _active.append(report)


def skipped_tracing(runs: str = "PyTorch (cached choice)") -> None:
    """On a cached choice the backend runs Dynamo's graph in PyTorch, or the one TVM module,
    tracing nothing."""
    if _active is not None:
        _active.append(GraphReport("skipped", 0, 0, {}, 0, runs=runs))


def chose(graph, choice, subgraphs: int, cached: bool) -> None:
    """The select stage decided for ``graph`` (an AtenGraph)."""
    if _active is None:
        return
    for report in _active:
        if report.graph is graph:
            report.runs = _runs(choice, subgraphs) + (" — cached choice" if cached else "")
            if choice.in_place:
                report.per_subgraph = [
                    (name, "TVM" if choice.wins and choice.use_tvm.get(name) else "PyTorch",
                     tvm_s * 1e6, torch_s * 1e6) for name, (tvm_s, torch_s) in choice.in_place.items()]
            t = choice.timing
            if t is not None:
                report.times = (f"TVM {t.candidate_s * 1e3:.3f} ms vs PyTorch "
                                f"{t.reference_s * 1e3:.3f} ms")


def _runs(choice, subgraphs: int) -> str:
    if not choice.wins:
        return "PyTorch (TVM lost its race)" if choice.timing is not None or subgraphs else "PyTorch"
    if choice.whole:
        return "TVM, the whole graph as one module"
    kept = sum(choice.use_tvm.values())
    return f"TVM for {kept} of {subgraphs} subgraph(s), PyTorch for the rest"


def _kernels(report: GraphReport) -> list:
    """The kernels of what runs in TVM, with the tuning database's best measurements."""
    graph = report.graph
    if graph is None:
        return []
    if graph.whole is not None and graph.current is graph.whole:
        modules = [graph.whole]
    elif graph.current is graph.original:
        return []
    else:
        modules = [s for s in graph.subgraphs if s.use_tvm and s.has_kernel()]
    try:
        return kernel_rows(modules, report.settings)
    except Exception:  # symbolic shapes, an unreadable cache: the report goes without kernels
        return []


def kernel_rows(modules: list, settings) -> list:
    from .cache import store_for
    from .lower import target_for, to_relax
    from .runtime.subgraph import device_of, output_vals
    from .tune import progress, tasks as task_lib

    mods, device = [], None
    for module in modules:
        inputs = [n.meta.get("val") for n in module.eager.graph.nodes if n.op == "placeholder"]
        device = device_of(inputs, output_vals(module.eager))
        mods.append(to_relax(module.eager, inputs, module.weights, settings.layout,
                             settings.weight_layouts, getattr(module.last, "matmul", "tvm")))
    if not mods:
        return []
    target = target_for(device)
    tasks, weights = task_lib.merged(mods, target)
    store = store_for(settings.cache_dir)
    database = store.open_records(target) if store.enabled else None
    return progress.rows(tasks, weights, database)
