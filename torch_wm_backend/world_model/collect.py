"""``tvm-wm collect``: measure sampled schedules of the zoo's tasks into MetaSchedule JSON databases.

One database directory per network under ``--out``. Resumable: a task that already holds ``--trials``
records is skipped. Tasks of training networks whose workload also occurs in an evaluation network are
dropped (the evaluation networks' own tasks go to their own databases, the test set). Next to each
database, ``transitions/`` holds self-supervised data: replayed trace prefixes and the pooled
PerStoreFeature of the program after them (no measurement needed).
"""
from __future__ import annotations

import importlib.util
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

from ..lower.target import _cpu_cores, cpu_target, parse_target  # noqa: F401  (benchmarks use cpu_target)

log = logging.getLogger(__name__)
DEFAULT_OUT = "benchmarks/work/wm_data"
DEFAULT_ZOO = "benchmarks/zoo.py"


def load_zoo(path: str):
    spec = importlib.util.spec_from_file_location("wm_zoo", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["wm_zoo"] = mod
    spec.loader.exec_module(mod)
    return mod


# the layout option as the backend's default sets it (settings.py): a CNN's convolutions are
# channels-last on the CPU. Records up to 2026-12-02 were collected with "NCHW".
LAYOUT = "auto"
LAYOUTS = ("NCHW", LAYOUT)  # every layout the data holds records of: held-out workloads in any


def network_tasks(zoo, name: str, target, layout: str = LAYOUT, weight_layouts: bool = False) -> list:
    """Tuning tasks of a zoo network as the backend tunes an inference graph whose every op lowers
    (one module, weights frozen: lower/freeze.py; ``layout``, ``weight_layouts``: the options),
    heaviest (weight x flop) first."""
    from ..lower import to_relax
    from ..lower.freeze import exported
    from ..tune.tasks import extract

    model, inputs = zoo.build(name)
    gm, args, weights = exported(model, inputs)
    tasks = extract(to_relax(gm, args, weights, layout, weight_layouts), target)
    return sorted(tasks, key=lambda t: -float(t.weight) * task_flops(t))


def task_flops(task) -> float:
    from ..tune.tasks import flops

    return flops(task) or 1.0  # unknown flops rank last


def task_hash(task) -> str:
    from .state import workload_hash

    return workload_hash(task.dispatched[0])


def sample_candidates(mod, target, n: int, seed: int, threads: int = 1) -> list:
    from ..tune.intrinsics import tune_context

    ctx = tune_context(mod=mod, target=target, space_generator="post-order-apply",
                       search_strategy="replay-trace", num_threads=threads, rand_state=seed)
    ctx.pre_tuning(max_trials=n, num_trials_per_iter=n)
    return list(ctx.generate_measure_candidates() or [])


def measure(cands, target, builder, runner) -> list:
    """Run times (seconds, median) per candidate; None where build or run failed."""
    from tvm.s_tir import meta_schedule as ms

    built = builder.build([ms.builder.BuilderInput(c.sch.mod, target) for c in cands])
    ok = [i for i, b in enumerate(built) if b.error_msg is None]
    device = "cpu" if target.kind.name == "llvm" else target.kind.name
    futures = runner.run([ms.runner.RunnerInput(built[i].artifact_path, device,
                                                cands[i].args_info) for i in ok])
    out = [None] * len(cands)
    for i, fut in zip(ok, futures):
        res = fut.result()
        if res.error_msg is None and res.run_secs:
            out[i] = [float(s) for s in res.run_secs]
    return out


def prefix_transitions(mod, target, text: str, blocks: dict, cuts: int = 4) -> dict | None:
    """Replay ``cuts`` prefixes of a trace; return token positions and pooled features after them."""
    import tvm
    from tvm.s_tir import Schedule
    from tvm.s_tir.schedule import Trace

    from . import state, tokenizer

    tok = tokenizer.tokenize(text, blocks)
    if len(tok) < 2:
        return None
    sch0 = Schedule(mod)
    full = None
    positions, feats = [], []
    for j in sorted(set(np.linspace(0, len(tok) - 1, cuts).round().astype(int).tolist())):
        k = int(tok.inst_index[j]) + 1
        try:
            if full is None:
                full = _trace_of(text, mod)
            insts = list(full.insts)[:k]
            trace = Trace(insts, {i: full.decisions[i] for i in insts if i in full.decisions})
            sch = Schedule(mod)
            trace.apply_to_schedule(sch, remove_postproc=False)
            feats.append(state.extract_pooled(sch, target))
            positions.append(j)
        except Exception as err:  # noqa: BLE001 - a prefix that cannot be replayed is skipped
            log.debug("prefix replay failed: %s", err)
    del sch0, tvm
    if not positions:
        return None
    return {"positions": positions, "feats": np.stack(feats)}


_TRACE_CACHE: dict = {}


def _trace_of(text, mod):
    return _TRACE_CACHE[text]


def collect_network(zoo, name, out: Path, target, trials: int, max_tasks: int, skip: set,
                    builder, runner, pbar, extra_unmeasured: int = 8, transitions: bool = True,
                    threads: int = 1) -> int:
    from tvm.s_tir import meta_schedule as ms
    import tvm

    from . import dataset, state

    net_dir = out / name
    net_dir.mkdir(parents=True, exist_ok=True)
    manifest_path = net_dir / "tasks.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    db = ms.database.JSONDatabase(work_dir=str(net_dir))
    (net_dir / "transitions").mkdir(exist_ok=True)
    tasks = network_tasks(zoo, name, target)
    pending = []   # sample every task first: one builder/runner pool start per network, not per task
    for t in [t for t in tasks if task_hash(t) not in skip][:max_tasks]:
        h = task_hash(t)
        mod = t.dispatched[0]
        failed = manifest.get(h, {}).get("failed", 0)
        manifest[h] = {"name": t.task_name, "weight": int(t.weight), "flops": task_flops(t), "failed": failed}
        wl = db.commit_workload(mod)
        have = len(db.get_top_k(wl, 100000))
        if have >= trials or (have == 0 and failed >= trials):   # done, or no candidate of it ever ran
            pbar.update(trials)
            continue
        cands = sample_candidates(mod, target, trials - have, seed=(int(h, 16) + have) % (2**31),
                                  threads=threads)
        pending.append((h, mod, wl, have, cands))
    flat = [c for *_, cands in pending for c in cands]
    secs = measure(flat, target, builder, runner) if flat else []
    first = dataset.record_count(net_dir)
    done, i = 0, 0
    for h, mod, wl, have, cands in pending:
        args_info = ms.arg_info.ArgInfo.from_prim_func(state.func_of(mod))
        for c, s in zip(cands, secs[i:i + len(cands)]):
            if s is not None:
                db.commit_tuning_record(ms.database.TuningRecord(
                    c.sch.trace, wl, [tvm.tirx.FloatImm("float64", x) for x in s], target, args_info))
                done += 1
        ran = sum(s is not None for s in secs[i:i + len(cands)])
        manifest[h]["failed"] += len(cands) - ran
        log.info("%s %s: %d/%d measured", name, manifest[h]["name"], ran, len(cands))
        i += len(cands)
        if transitions:
            extra = sample_candidates(mod, target, extra_unmeasured, seed=int(h, 16) % (2**31) + 7,
                                      threads=threads)
            _save_transitions(mod, target, cands + extra, net_dir / "transitions" / f"{h}_{have}.npz")
        pbar.update(trials - have)
    manifest_path.write_text(json.dumps(manifest, indent=1))
    dataset.record_batch(net_dir, first, dataset.record_count(net_dir))
    return done


def _save_transitions(mod, target, cands, path: Path) -> None:
    from . import state

    info = state.task_info(mod, target)
    texts, pos, feats = [], [], []
    for c in cands:
        text = str(c.sch.trace)
        _TRACE_CACHE.clear()
        _TRACE_CACHE[text] = c.sch.trace
        tr = prefix_transitions(mod, target, text, info.blocks)
        if tr is not None:
            texts.append(text)
            pos.append(np.asarray(tr["positions"], np.int64))
            feats.append(tr["feats"].astype(np.float16))
    if texts:
        np.savez_compressed(path, texts=np.array(texts, dtype=object), state=info.state,
                            positions=np.array(pos, dtype=object), feats=np.array(feats, dtype=object))


def eval_hashes(zoo, out: Path, target) -> set:
    """Workloads of the evaluation networks in every layout the data holds (cached beside the
    data, with the networks' names, the layouts and the lowering's source: a change to lower/, a
    batch norm folded, makes other workloads)."""
    from ..cache.versions import PACKAGE_DIR, source_hash

    cache = out / "eval_hashes.json"
    names = sorted(zoo.EVAL)
    lowering = source_hash(PACKAGE_DIR / "lower")
    if cache.exists():
        held = json.loads(cache.read_text())
        if (isinstance(held, dict) and held.get("networks") == names
                and held.get("layouts", ["NCHW"]) == list(LAYOUTS) and held.get("lowering") == lowering):
            return set(held["hashes"])
    hashes = set()
    for name in names:
        for layout in LAYOUTS:
            hashes |= {task_hash(t) for t in network_tasks(zoo, name, target, layout)}
    out.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({"networks": names, "layouts": list(LAYOUTS), "lowering": lowering,
                                 "hashes": sorted(hashes)}))
    return hashes


def rebuild_transitions(out: Path, target) -> int:
    """Recreate ``transitions/`` from the measured records, for tasks that have none (committed data
    ships records only: the replayed prefixes are regenerable, measurements are not). Returns the
    number of tasks rebuilt."""
    from tqdm import tqdm

    from ..errors import TvmWmError
    from .dataset import COMMITTED_RECORDS, networks_in, records_by_task

    if not out.is_dir() or not networks_in(out):
        raise TvmWmError(f"no record databases under {out}: {COMMITTED_RECORDS}, "
                         "or run `tvm-wm collect` first")
    todo = []
    for net_dir in (out / name for name in networks_in(out)):
        (net_dir / "transitions").mkdir(exist_ok=True)
        have = {f.stem.split("_")[0] for f in (net_dir / "transitions").glob("*.npz")}
        todo += [(net_dir, h, mod, recs) for h, (mod, recs) in records_by_task(net_dir).items()
                 if h not in have]
    for net_dir, h, mod, recs in tqdm(todo, desc="replay", unit="task"):
        _save_transitions(mod, target, [r.as_measure_candidate() for r in recs],
                          net_dir / "transitions" / f"{h}_records.npz")
    return len(todo)


def run(args) -> int:
    from tqdm import tqdm
    from tvm.s_tir import meta_schedule as ms

    out = Path(args.out)
    cores = args.cores or _cpu_cores()
    target = cpu_target(cores) if args.target == "cpu" else parse_target(args.target)
    if args.rebuild_transitions:
        log.info("rebuilt the transitions of %d tasks under %s", rebuild_transitions(out, target), out)
        return 0
    zoo = load_zoo(args.zoo)
    from .. import threads
    from ..tune.tuner import make_builder, worker_threads
    from .dataset import record_eval_networks, record_threads

    nets = args.networks or _interleave(list(zoo.EVAL), list(zoo.TRAIN))
    # before the pools start: their workers measure with TVM on as many threads as PyTorch uses
    n_threads = threads.sync()
    for name in nets:  # refuses to add records to a network measured at another thread count
        record_threads(out / name, n_threads, str(target.attrs.get("mcpu", "")) or None)
    record_eval_networks(out, list(zoo.EVAL))
    held_out = eval_hashes(zoo, out, target)
    builder = make_builder(cores)  # keeps its workers: MetaSchedule's restarts them per batch
    runner = ms.runner.LocalRunner(timeout_sec=20, evaluator_config=ms.runner.EvaluatorConfig(
        number=3, repeat=1, min_repeat_ms=0, enable_cpu_cache_flush=False),
        initializer=worker_threads(n_threads))
    try:
        seen: set = set()
        t0 = time.time()
        with tqdm(total=len(nets) * args.max_tasks * args.trials, desc="measure", unit="cand") as pbar:
            for name in nets:
                if args.deadline_s and time.time() - t0 > args.deadline_s:
                    log.info("deadline of %.0f s reached; stopping before %s (rerun to resume)",
                             args.deadline_s, name)
                    break
                is_eval = name in zoo.EVAL
                skip = seen if is_eval else (held_out | seen)
                n = collect_network(zoo, name, out, target, args.trials,
                                    args.eval_tasks if is_eval else args.max_tasks, skip, builder, runner,
                                    pbar, transitions=args.transitions,
                                    # one sampling thread on CPUs keeps earlier CPU data's seeds
                                    threads=1 if target.kind.name == "llvm" else cores)
                seen |= set(json.loads((out / name / "tasks.json").read_text()))
                log.info("%s: %d new records (%.0f s)", name, n, time.time() - t0)
    finally:
        builder.shutdown()
    return 0


def _interleave(evals: list, trains: list) -> list:
    """Evaluation and training networks alternately (one eval net every few training nets), so a
    short run yields both splits early."""
    out, step = [], 3
    while evals or trains:
        if evals:
            out.append(evals.pop(0))
        out += trains[:step]
        trains = trains[step:]
    return out


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("collect", help="measure sampled schedules of the zoo into databases")
    p.add_argument("--zoo", default=DEFAULT_ZOO, help="python file defining TRAIN, EVAL, build()")
    p.add_argument("--out", default=DEFAULT_OUT)
    p.add_argument("--networks", nargs="*", help="subset of zoo networks (default: all)")
    p.add_argument("--trials", type=int, default=16, help="measured candidates per task")
    p.add_argument("--max-tasks", type=int, default=12, help="heaviest tasks per training network")
    p.add_argument("--eval-tasks", type=int, default=8, help="heaviest tasks per evaluation network")
    p.add_argument("--target", default="cpu",
                   help="cpu, cpu:CORES, cuda (this machine's GPU) or cuda:sm_XY; measuring needs the device")
    p.add_argument("--cores", type=int, default=None, help="CPU threads of the target and build workers "
                   "(default: the cores this process may use)")
    p.add_argument("--no-transitions", dest="transitions", action="store_false",
                   help="measured records only: skip the replayed-prefix dynamics data (saves time)")
    p.add_argument("--deadline-s", type=float, default=None,
                   help="start no new network after this many seconds (rerun to resume)")
    p.add_argument("--rebuild-transitions", action="store_true",
                   help="measure nothing: replay the records under --out into transitions/ where a "
                        "task has none (after unpacking committed data, which ships records only)")
    p.set_defaults(func=run)
