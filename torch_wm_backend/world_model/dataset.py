"""Training data from ``tvm-wm collect``'s databases: measured ranking groups and dynamics transitions."""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import tokenizer

log = logging.getLogger(__name__)


@dataclass
class TaskGroup:
    """The measured candidates of one task of one network, measured in one batch."""
    network: str
    key: str
    weight: int
    state: np.ndarray
    tokens: list
    costs: np.ndarray          # seconds, one per token list
    texts: list = field(default_factory=list)
    mod: object = None         # the workload IRModule (for baselines that replay)
    records: list = field(default_factory=list)
    batch: int = 0             # the collector batch the records were measured in (batch_ids)


@dataclass
class Transition:
    """A trace with pooled PerStoreFeature targets after some of its steps."""
    state: np.ndarray
    tokens: object
    positions: np.ndarray
    feats: np.ndarray


# where the committed CPU records are and how to unpack them, for the errors that need records
COMMITTED_RECORDS = ("`tar -xJf benchmarks/data/wm_data_cpu_t2.tar.xz -C benchmarks/work` unpacks the "
                     "committed records into benchmarks/work/wm_data_t2")
MEASURED_WITH = "measured_with.json"  # per network: {"tvm_threads": n, "cpu": the target's mcpu}
# Records without it were measured before TVM's pool followed PyTorch's thread count: at one
# thread of this 2-core machine (TVM sized its pool as half the hardware threads).
UNRECORDED_THREADS = 1
EVAL_NETWORKS = "eval_networks.json"  # beside the networks: those held out of training whole


def record_threads(net_dir: Path, n: int, cpu: str | None = None) -> None:
    """Say that ``net_dir``'s records are measured with TVM on ``n`` threads (on the CPU ``cpu``,
    the target's mcpu); refuse to add to records measured at another count or on another CPU (a
    resumed collection may run on another machine: a task's records compare its candidates, so
    they must come from one)."""
    from ..errors import TvmWmError

    net_dir = Path(net_dir)
    have, had_cpu = threads_of(net_dir), cpu_of(net_dir)
    if (net_dir / "database_tuning_record.json").exists():
        if have != n:
            raise TvmWmError(f"{net_dir} holds records measured with TVM on {have} thread(s), not "
                             f"{n}: collect into another --out folder")
        if cpu is not None and had_cpu is not None and had_cpu != cpu:
            raise TvmWmError(f"{net_dir} holds records measured on a {had_cpu} CPU, not {cpu}: "
                             "collect into another --out folder")
    net_dir.mkdir(parents=True, exist_ok=True)
    (net_dir / MEASURED_WITH).write_text(json.dumps({"tvm_threads": n, "cpu": cpu or had_cpu}))


def _measured_with(net_dir: Path) -> dict:
    path = Path(net_dir) / MEASURED_WITH
    return json.loads(path.read_text()) if path.exists() else {}


def cpu_of(net_dir: Path) -> str | None:
    """The CPU (the target's mcpu) ``net_dir``'s records were measured on; None if not recorded."""
    return _measured_with(net_dir).get("cpu")


def threads_of(net_dir: Path) -> int:
    return int(_measured_with(net_dir).get("tvm_threads", UNRECORDED_THREADS))


def check_threads(root, networks) -> int:
    """The one thread count ``networks``' records were measured at; an error if they differ."""
    from ..errors import TvmWmError

    counts = {net: threads_of(Path(root) / net) for net in networks}
    distinct = sorted(set(counts.values()))
    if len(distinct) > 1:
        by = {n: [net for net, c in counts.items() if c == n] for n in distinct}
        raise TvmWmError("records measured with TVM at different thread counts, not mixed: " +
                         "; ".join(f"{n}: {', '.join(nets)}" for n, nets in by.items()))
    return distinct[0] if distinct else UNRECORDED_THREADS


BATCHES = "batches.json"   # per network: [[first, end) record lines of each collector batch]
RECORDS = "database_tuning_record.json"


def record_count(net_dir: Path) -> int:
    path = Path(net_dir) / RECORDS
    if not path.exists():
        return 0
    with open(path, "rb") as f:
        return sum(1 for _ in f)


def record_batch(net_dir: Path, first: int, end: int) -> None:
    """Say that records ``first`` to ``end`` (lines of the database) were measured in one batch:
    the run times of one batch compare, those of batches hours or days apart need not (this host's
    speed drifts; a task's records measured on two days rank by the day as much as by schedule)."""
    if end <= first:
        return
    path = Path(net_dir) / BATCHES
    batches = json.loads(path.read_text()) if path.exists() else []
    path.write_text(json.dumps(batches + [[first, end]]))


def record_eval_networks(root: Path, names: list) -> None:
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    path = root / EVAL_NETWORKS
    held = set(json.loads(path.read_text())) if path.exists() else set()
    path.write_text(json.dumps(sorted(held | set(names))))


def eval_networks(root) -> set:
    """The networks held out of training whole, as the collector wrote them beside the data; for
    data from before it did, the evaluation networks of this source tree's zoo."""
    path = Path(root) / EVAL_NETWORKS
    if path.exists():
        return set(json.loads(path.read_text()))
    from .collect import DEFAULT_ZOO, load_zoo

    zoo = Path(__file__).resolve().parents[2] / DEFAULT_ZOO  # the repository, not the cwd
    return set(load_zoo(str(zoo)).EVAL) if zoo.exists() else set()


def networks_in(root: Path) -> list[str]:
    return sorted(p.name for p in Path(root).iterdir() if (p / "database_workload.json").exists())


def records_by_task(net_dir) -> dict:
    """A network's database: ``{workload hash: (workload module, [tuning records])}``, its batches
    together."""
    out: dict = {}
    for (h, _), (mod, recs) in records_by_batch(net_dir).items():
        out.setdefault(h, (mod, []))[1].extend(recs)
    return out


def batch_ids(workloads: list, batches: list) -> list[int]:
    """The batch of each record line, given its workload (``workloads``, one per line) and the
    batches the collector recorded (``[[first, end), ...]``). Lines no recorded batch covers (data
    collected before batches were recorded) start a new batch wherever the workload changes: one
    collector run appends each task's records together, so a task topped up by a later run has its
    records in two places of the file."""
    starts, covered = {a for a, _ in batches}, set()
    for a, b in batches:
        covered.update(range(a, b))
    ids, batch = [], -1
    for i, w in enumerate(workloads):
        if i in starts or (i not in covered and (i == 0 or (i - 1) in covered or w != workloads[i - 1])):
            batch += 1
        ids.append(batch)
    return ids


def records_by_batch(net_dir) -> dict:
    """A network's records by task and batch, in the order they were measured:
    ``{(workload hash, batch): (workload module, [tuning records])}``."""
    from tvm.s_tir import meta_schedule as ms

    from .state import workload_hash

    net_dir = Path(net_dir)
    workloads = [ms.database.Workload.from_json(json.loads(line))
                 for line in open(net_dir / "database_workload.json") if line.strip()]
    hashes = [workload_hash(w.mod) for w in workloads]
    rows = [json.loads(line) for line in open(net_dir / RECORDS) if line.strip()]
    batches = json.loads((net_dir / BATCHES).read_text()) if (net_dir / BATCHES).exists() else []
    out: dict = {}
    for (wid, rec), batch in zip(rows, batch_ids([r[0] for r in rows], batches)):
        w = workloads[wid]
        out.setdefault((hashes[wid], batch), (w.mod, []))[1].append(
            ms.database.TuningRecord.from_json(rec, w))
    return out


def load_groups(root, networks, target, keep_mod: bool = False) -> list[TaskGroup]:
    """One group per task and batch: run times measured hours or days apart do not rank together."""
    from . import state

    groups = []
    check_threads(root, networks)
    for net in networks:
        d = Path(root) / net
        if not (d / RECORDS).exists():
            continue
        manifest = json.loads((d / "tasks.json").read_text()) if (d / "tasks.json").exists() else {}
        for (h, batch), (mod, recs) in records_by_batch(d).items():
            recs = [r for r in recs if r.run_secs]
            if len(recs) < 2:
                continue
            # shuffled: nothing of the measuring order (nor of the database's, by run time) leaks
            order = np.random.default_rng(int(h, 16) + batch).permutation(len(recs))
            recs = [recs[i] for i in order]
            info = state.task_info(mod, target)
            texts = [str(r.trace) for r in recs]
            costs = np.array([float(np.median([float(s) for s in r.run_secs])) for r in recs])
            groups.append(TaskGroup(net, h, int(manifest.get(h, {}).get("weight", 1)), info.state,
                                    tokenizer.tokenize_many(texts, info.blocks), costs,
                                    texts, mod if keep_mod else None, recs if keep_mod else [],
                                    batch))
    return groups


def load_transitions(root, networks, target) -> list[Transition]:
    """Dynamics data; task block info comes from the same network's database workloads."""
    from . import state

    out = []
    for net in networks:
        d = Path(root) / net
        if not (d / "transitions").exists():
            continue
        infos = {h: state.task_info(mod, target) for h, (mod, _) in records_by_task(d).items()}
        for f in sorted((d / "transitions").glob("*.npz")):
            info = infos.get(f.stem.split("_")[0])
            if info is None:
                continue
            z = np.load(f, allow_pickle=True)
            for text, pos, feats in zip(z["texts"], z["positions"], z["feats"]):
                out.append(Transition(info.state, tokenizer.tokenize(str(text), info.blocks),
                                      np.asarray(pos, np.int64), np.asarray(feats, np.float32)))
    return out


def pair_outcomes(costs, scores) -> tuple:
    """The pairs of one task's candidates whose costs differ, as index arrays (i, j), and per pair
    1 where the scores order it right (higher score, lower cost), 0 where wrong, 0.5 where tied."""
    c, s = np.asarray(costs), np.asarray(scores)
    i, j = np.triu_indices(len(c), 1)
    keep = c[i] != c[j]
    i, j = i[keep], j[keep]
    return i, j, np.where(s[i] == s[j], 0.5, ((s[i] > s[j]) == (c[i] < c[j])).astype(float))


def ranking_metrics(groups: list, scores: list) -> dict:
    """Pairwise accuracy (tied scores count half) and top-k score (sum w*best / sum w*best-of-predicted-top-k) over tasks."""
    correct = total = 0
    top = {1: [0.0, 0.0], 5: [0.0, 0.0]}
    for g, s in zip(groups, scores):
        c, s = np.asarray(g.costs), np.asarray(s)
        _, _, right = pair_outcomes(c, s)
        correct += float(right.sum())
        total += len(right)
        order = np.argsort(-s, kind="stable")
        for k in top:
            top[k][0] += g.weight * c.min()
            top[k][1] += g.weight * c[order[:k]].min()
    return {"pairwise_acc": correct / max(total, 1), "pairs": total, "tasks": len(groups),
            "top1": top[1][0] / max(top[1][1], 1e-30), "top5": top[5][0] / max(top[5][1], 1e-30)}
