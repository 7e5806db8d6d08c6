"""One subgraph, one input signature: lower -> (cache) -> tune -> build -> guard. The stages, in order."""
from __future__ import annotations

import functools
import hashlib
import logging
import os
import tempfile

import torch
import tvm

from . import counters
from .build import build
from .cache import ArtifactStore, versions
from .errors import TvmWmError
from .lower import target_for, to_relax
from .runtime.guard import compare
from .runtime.kernel import Kernel
from .runtime.subgraph import Compiled, call_kernel, device_of, output_vals
from .settings import Settings

log = logging.getLogger("torch_wm_backend")
KERNEL = "kernel.so"


@functools.lru_cache(maxsize=None)
def store_for(root) -> ArtifactStore:
    return ArtifactStore(root)


def records_dir_of(store: ArtifactStore, target):
    from .cache import records_dir

    return str(records_dir(store.root, target)) if store.enabled else None


def cache_key(eager: torch.fx.GraphModule, args: list, target, settings: Settings) -> dict:
    """Everything that changes the artifact. Weights are inputs of the graph, so not in the key.
    The graph is keyed by its ATen code, so a warm start looks kernels up without lowering."""
    graph = hashlib.sha256(eager.code.encode()).hexdigest()
    inputs = [
        [list(a.shape), str(a.dtype), a.is_contiguous()] if isinstance(a, torch.Tensor) else repr(a)
        for a in args
    ]
    return {"graph": graph, "shapes": inputs, "target": str(target), "versions": versions(),
            "settings": settings.artifact_key()}


def compile_subgraph(name: str, eager: torch.fx.GraphModule, args: list, settings: Settings,
                     budget=None) -> Compiled:
    """This subgraph for these inputs: its TVM kernel (None when TVM cannot build a correct one) and
    whether to run it. Where the guard chose PyTorch the kernel is still loaded, so the choice can be
    made again in the model's context (runtime/context.py)."""
    device = device_of(args, output_vals(eager))
    try:
        target = target_for(device)
        store = store_for(settings.cache_dir)
        built = []  # whether this call built the entry (its guard choice is then fresh)

        def build_here():
            built.append(True)
            return _build(name, target, eager, args, device, settings, store, budget)

        entry = store.get_or_build(cache_key(eager, args, target, settings), build_here)
        guard = entry.extra["guard"]
        if KERNEL not in entry.files:  # TVM's values were wrong: nothing to reconsider
            if settings.eager_guard:
                counters.bump("guard_kept_eager")
            return Compiled(None, False)
        kernel = Kernel(tvm.runtime.load_module(str(entry.files[KERNEL])), device)
        # a choice made while other processes loaded the CPU is timed again here
        if settings.eager_guard and entry.extra.get("provisional") and not built:
            guard, _ = _choose(name, kernel, eager, args, device)
            counters.bump("guard_retimed")
        if settings.eager_guard:  # counted on hits too: the choice is part of the artifact
            counters.bump(f"guard_kept_{guard}")
    except TvmWmError:
        raise
    except Exception as err:  # a TVM failure must never break the user's model
        if settings.strict:
            raise TvmWmError(f"{name}: TVM failed to compile this subgraph: {err}") from err
        log.warning("%s: TVM failed (%s: %s); it runs in PyTorch", name, type(err).__name__,
                    str(err).splitlines()[0] if str(err) else "")
        log.debug("%s: the failure in full", name, exc_info=True)
        counters.bump("subgraphs_failed")
        return Compiled(None, False)
    counters.bump("subgraphs_compiled")
    return Compiled(kernel, guard == "tvm")


def pretune_graph(subgraphs: dict, settings: Settings, budget, name: str) -> None:
    """Tune the kernels of all of a graph's subgraphs together, before the first call: one search
    over every distinct workload, weighted by use, instead of one per subgraph. Subgraphs with
    symbolic shapes are tuned on their first call instead."""
    by_device: dict = {}
    store = store_for(settings.cache_dir)
    for sub_name, eager in subgraphs.items():
        inputs = [n.meta.get("val") for n in eager.graph.nodes if n.op == "placeholder"]
        if not all(isinstance(v, torch.Tensor) for v in inputs):
            continue
        device = device_of(inputs, output_vals(eager))
        if store.has(cache_key(eager, inputs, target_for(device), settings)):
            continue  # built already, tuned or not: a warm start lowers and tunes nothing
        try:
            mod = to_relax(eager, inputs)  # fake tensors: only shapes and dtypes are read
        except Exception:
            continue  # not static, or TVM cannot import it: the first call will say why
        by_device.setdefault(device, []).append(mod)
    for device, mods in by_device.items():
        target = target_for(device)
        from .tune import tune

        with store.records_lock(target):  # open under the lock: see what other processes tuned
            tune(mods, target, settings, store.open_records(target), budget, name,
                 records_dir_of(store, target))


def _choose(name, kernel, eager, args, device):
    """The guard's choice, "tvm" or "eager", timing the model's own call path; and the timing."""
    timing = compare(lambda: call_kernel(kernel, args), lambda: eager(*args), device)
    choice = "tvm" if timing.tvm_wins else "eager"
    log.info("%s: tvm %.3f ms, eager %.3f ms -> %s%s", name, timing.tvm_s * 1e3,
             timing.eager_s * 1e3, choice, " (machine busy: provisional)" if timing.busy else "")
    return choice, timing


def mismatch(tvm_outs: list, eager_out) -> str:
    """Why TVM's outputs are not PyTorch's (shape, dtype or values), or "" when they agree."""
    eager_outs = list(eager_out) if isinstance(eager_out, (tuple, list)) else [eager_out]
    if len(tvm_outs) != len(eager_outs):
        return f"{len(tvm_outs)} outputs, not {len(eager_outs)}"
    for i, (t, e) in enumerate(zip(tvm_outs, eager_outs)):
        if tuple(t.shape) != tuple(e.shape) or t.dtype != e.dtype:
            return f"output {i}: {t.dtype}{list(t.shape)}, not {e.dtype}{list(e.shape)}"
        if e.is_floating_point():
            # float32 kernels differ from PyTorch's by summation order only (~1e-6 of the scale);
            # a wrong schedule measured at 1e-3 of it (a BERT layer norm), so the bound is tight
            tol = 1e-4 if torch.finfo(e.dtype).bits >= 32 else 1e-2
            scale = float(e.abs().max()) if e.numel() else 0.0
            ok = torch.allclose(t.to(e.device), e, rtol=tol, atol=tol * max(1.0, scale),
                                equal_nan=True)
        else:
            ok = torch.equal(t.to(e.device), e)
        if not ok:
            return f"output {i}: values differ"
    return ""


def _build(name, target, eager, args, device, settings, store, budget):
    """Lower, tune, build, and time against eager: the artifact's files and the guard's choice."""
    mod = to_relax(eager, args)
    database = None
    if settings.trials > 0:
        from .tune import tune

        with store.records_lock(target):  # open under the lock: see what other processes tuned
            database = store.open_records(target)
            tune([mod], target, settings, database, budget, name, records_dir_of(store, target))
    executable = build(mod, target, database)
    extra = {"guard": "tvm", "subgraph": name}
    # Values are always checked, guard or not: MetaSchedule can pick a wrong schedule (measured:
    # 2 of 24 sampled schedules of a BERT layer-norm kernel, rfactor + compute_at of its two
    # reductions, computed wrong values). Then default schedules, and if those differ too, PyTorch.
    want = eager(*args)
    kernel = Kernel(executable, device)
    problem = mismatch(call_kernel(kernel, args), want)
    if problem and database is not None:
        log.warning("%s: the tuned kernel's result differs from PyTorch's (%s): a wrong schedule; "
                    "default schedules are used instead", name, problem)
        counters.bump("tuned_wrong")
        executable = build(mod, target, None)
        kernel = Kernel(executable, device)
        problem = mismatch(call_kernel(kernel, args), want)
        extra["tuned_wrong"] = True
    if problem:  # never trade a correct result for a fast one
        log.warning("%s: TVM's result differs from PyTorch's (%s); it runs in PyTorch", name, problem)
        return {}, {**extra, "guard": "eager", "mismatch": problem}
    if settings.eager_guard:
        choice, timing = _choose(name, kernel, eager, args, device)
        extra.update(guard=choice, tvm_ms=timing.tvm_s * 1e3, eager_ms=timing.eager_s * 1e3,
                     provisional=timing.busy)
    # the kernel is kept even where eager won: a provisional choice is timed again later
    with tempfile.TemporaryDirectory(prefix="tvm_wm_") as tmp:
        path = os.path.join(tmp, KERNEL)
        executable.export_library(path)
        with open(path, "rb") as f:
            return {KERNEL: f.read()}, extra


def choose_in_context(name: str, graph, subgraphs: list, args: list, settings: Settings,
                      reference, graph_for):
    """After a graph's first call: choose by timing which subgraphs run in TVM and return the graph
    to run from now on — ``graph_for(names)`` (the partitioned graph with only those subgraphs
    called, the rest inline) or ``reference`` (the ATen graph unpartitioned); see
    runtime/context.py. Cached with the graph; a choice made on a busy machine is not."""
    from .runtime import context

    device = device_of([a for a in args if isinstance(a, torch.Tensor)])
    store = store_for(settings.cache_dir)
    parts = {**cache_key(graph, args, target_for(device), settings), "format": "context-3",
             "subgraphs": hashlib.sha256("".join(s.eager.code for s in subgraphs).encode()).hexdigest()}
    entry = store.get(parts, count=False)
    if entry is not None:
        use = entry.extra["use_tvm"]
        context.apply(subgraphs, use)
        chosen = graph_for({n for n, on in use.items() if on}) if any(use.values()) else None
    else:
        choice = context.choose(graph, subgraphs, args, device, reference, graph_for)
        use, chosen, timing = choice.use_tvm, choice.graph, choice.timing
        if timing is not None:
            log.info("%s: in context, %d of %d subgraphs in TVM: %.3f ms; unpartitioned, all in "
                     "PyTorch: %.3f ms -> %s%s", name, choice.raced, len(subgraphs),
                     timing.tvm_s * 1e3, timing.eager_s * 1e3,
                     "TVM" if chosen is not None else "PyTorch",
                     " (machine busy: not cached)" if timing.busy else "")
        if timing is None or not timing.busy:
            extra = {"use_tvm": use}
            if timing is not None:
                extra.update(graph_ms=timing.tvm_s * 1e3, eager_ms=timing.eager_s * 1e3)
            store.put(parts, {}, extra)
    kept = sum(bool(use.get(s.name)) for s in subgraphs) if chosen is not None else 0
    counters.bump("context_kept_tvm", kept)
    counters.bump("context_kept_eager", len(subgraphs) - kept)
    return chosen if chosen is not None else reference
