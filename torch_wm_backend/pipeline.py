"""One subgraph, one input signature: lower -> (cache) -> tune -> build -> value check. The
stages, in order. Which side runs, TVM or PyTorch, is the select stage's choice (select/)."""
from __future__ import annotations

import logging
import os
import tempfile

import torch
import tvm

from . import counters
from .build import build
from .cache import ArtifactStore, cache_key, store_for
from .errors import TvmWmError
from .logs import quiet_native
from .lower import target_for, variants
from .runtime.kernel import kernel_for
from .runtime.subgraph import call_kernel, device_of, output_vals
from .settings import Settings

log = logging.getLogger("torch_wm_backend")
KERNEL = "kernel.so"


def records_dir_of(store: ArtifactStore, target):
    from .cache import records_dir

    return str(records_dir(store.root, target)) if store.enabled else None


def compile_subgraph(name: str, eager: torch.fx.GraphModule, args: list, settings: Settings,
                     budget=None, weights: tuple = ()):
    """This subgraph's TVM kernel for these inputs, or None where TVM cannot build a correct one.
    ``weights``: positions of inputs that are inference weights, lifted (lower/freeze.py)."""
    device = device_of(args, output_vals(eager))
    if not all(isinstance(a, torch.Tensor) for a in args):
        weights = ()
    try:
        target = target_for(device)
        store = store_for(settings.cache_dir)
        parts = _key(eager, args, target, settings, weights)
        entry = store.get_or_build(parts, lambda: _build(name, target, eager, args, device, settings,
                                                         store, budget, weights))
        if KERNEL not in entry.files:  # TVM's values were wrong: PyTorch runs
            counters.bump("subgraphs_wrong")
            return None
        kernel = _load(entry, device, weights)
        kernel.cache_parts = parts if store.enabled else None  # where a warm start finds it
    except TvmWmError:
        raise
    except Exception as err:  # a TVM failure must never break the user's model
        if settings.strict:
            raise TvmWmError(f"{name}: TVM failed to compile this subgraph: {err}") from err
        log.warning("%s: TVM failed (%s: %s); it runs in PyTorch", name, type(err).__name__,
                    str(err).splitlines()[0] if str(err) else "")
        log.debug("%s: the failure in full", name, exc_info=True)
        counters.bump("subgraphs_failed")
        return None
    counters.bump("subgraphs_compiled")
    return kernel


def _load(entry, device, weights):
    with quiet_native():
        kernel = kernel_for(tvm.runtime.load_module(str(entry.files[KERNEL])), device, weights)
    kernel.matmul = entry.extra.get("matmul", "tvm")  # whose matrix products it calls
    if kernel.matmul == "pytorch":
        counters.bump("modules_pytorch_products")
    return kernel


def load_kernel(parts: dict, settings: Settings, device, weights: tuple = ()):
    """The cached kernel under the key ``parts``, or None (not cached, or not loadable)."""
    try:
        entry = store_for(settings.cache_dir).get(parts)
        return _load(entry, device, weights) if entry is not None and KERNEL in entry.files else None
    except Exception as err:
        log.debug("the cached kernel did not load (%s)", err)
        return None


def _key(eager, args, target, settings, weights) -> dict:
    parts = cache_key(eager, args, target, settings)
    return {**parts, "weights": list(weights)} if weights else parts


def pretune_graph(subgraphs: dict, settings: Settings, budget, name: str) -> None:
    """Tune the kernels of all of a graph's subgraphs together, before the first call: one search
    over every distinct workload, weighted by use, instead of one per subgraph. ``subgraphs``:
    name -> (graph, weight positions). Subgraphs with symbolic shapes are tuned on their first
    call instead."""
    by_device: dict = {}
    store = store_for(settings.cache_dir)
    for sub_name, (eager, weights) in subgraphs.items():
        inputs = [n.meta.get("val") for n in eager.graph.nodes if n.op == "placeholder"]
        if not all(isinstance(v, torch.Tensor) for v in inputs):
            continue
        device = device_of(inputs, output_vals(eager))
        if store.has(_key(eager, inputs, target_for(device), settings, weights)):
            continue  # built already, tuned or not: a warm start lowers and tunes nothing
        try:
            with quiet_native():  # fake tensors: only shapes and dtypes are read
                mods = _lowered(eager, inputs, weights, settings, device)
        except Exception:
            continue  # not static, or TVM cannot import it: the first call will say why
        by_device.setdefault(device, []).extend(mods.values())
    for device, mods in by_device.items():
        target = target_for(device)
        from .tune import tune

        with store.records_lock(target):  # open under the lock: see what other processes tuned
            tune(mods, target, settings, store.open_records(target), budget, name,
                 records_dir_of(store, target))


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


def matmuls(settings: Settings, device: torch.device) -> tuple:
    """Who may compute a whole-graph module's matrix products here (settings.py, ``matmul``):
    PyTorch's are called from inside the module on the CPU only."""
    if device.type != "cpu" or settings.matmul == "tvm":
        return ("tvm",)
    return ("pytorch",) if settings.matmul == "pytorch" else ("tvm", "pytorch")


def _lowered(eager, args, weights, settings, device) -> dict:
    return variants(eager, args, weights, settings.layout, settings.weight_layouts,
                    matmuls(settings, device))


def _build(name, target, eager, args, device, settings, store, budget, weights=()):
    """Lower, tune, build and check values: the artifact's files (none where TVM is wrong). With
    two ways to compute the products (``matmul="auto"``), both modules are tuned together, built
    and checked, and the faster of the correct ones in a race is kept."""
    with quiet_native():
        mods = _lowered(eager, args, weights, settings, device)
    database = None
    if settings.trials > 0:
        from .tune import tune

        with store.records_lock(target):  # open under the lock: see what other processes tuned
            database = store.open_records(target)
            tune(list(mods.values()), target, settings, database, budget, name,
                 records_dir_of(store, target))
    want = eager(*args)
    built, extra = {}, {"subgraph": name}
    for matmul, mod in mods.items():
        kernel, executable, found = _checked(name, mod, target, database, device, weights, args, want)
        extra.update(found)
        if kernel is not None:
            built[matmul] = (kernel, executable)
    if not built:  # never trade a correct result for a fast one
        return {}, extra
    matmul = next(iter(built))
    if "pytorch" in built:  # raced as it will run: its own kernels on the calling thread
        built["pytorch"][0].matmul = "pytorch"
    if len(built) > 1:
        from .select import products_race

        matmul = products_race(name, {m: k for m, (k, _) in built.items()}, args, device)
    if len(mods) > 1 or matmul != "tvm":
        extra["matmul"] = matmul
    with tempfile.TemporaryDirectory(prefix="tvm_wm_") as tmp:
        path = os.path.join(tmp, KERNEL)
        with quiet_native():
            built[matmul][1].export_library(path)
        with open(path, "rb") as f:
            return {KERNEL: f.read()}, extra


def _checked(name, mod, target, database, device, weights, args, want):
    """``mod`` built (tuned where ``database`` has records) and its values checked against
    ``want``: (kernel, executable, what to record), the kernel None where TVM is wrong."""
    executable = _quiet_build(mod, target, database)
    found = {}
    # Values are always checked, guard or not: MetaSchedule can pick a wrong schedule (measured:
    # 2 of 24 sampled schedules of a BERT layer-norm kernel, rfactor + compute_at of its two
    # reductions, computed wrong values). Then default schedules, and if those differ too, PyTorch.
    kernel = kernel_for(executable, device, weights)
    problem = mismatch(call_kernel(kernel, args), want)
    if problem and database is not None:
        log.warning("%s: the tuned kernel's result differs from PyTorch's (%s): a wrong schedule; "
                    "default schedules are used instead", name, problem)
        counters.bump("tuned_wrong")
        executable = _quiet_build(mod, target, None)
        kernel = kernel_for(executable, device, weights)
        problem = mismatch(call_kernel(kernel, args), want)
        found["tuned_wrong"] = True
    if problem:
        log.warning("%s: TVM's result differs from PyTorch's (%s); it runs in PyTorch", name, problem)
        return None, None, {**found, "mismatch": problem}
    return kernel, executable, found


def _quiet_build(mod, target, database):
    with quiet_native():  # TVM's compiler warns on the standard error from C++
        return build(mod, target, database)
