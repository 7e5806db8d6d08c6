"""Offline accuracy of the world model vs MetaSchedule's XGB and MLP on held-out networks.

All three learn from the same training networks' records (split by whole network, never by record)
and are scored on the evaluation networks' records: pairwise accuracy and top-1/top-5 score.
Writes benchmarks/results/wm_eval.{json,md}.

    python benchmarks/wm_eval.py [--data benchmarks/work/wm_data]
    python benchmarks/wm_eval.py --target cuda --data DIR   # GPU records -> wm_eval_cuda.{json,md}
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import pickle
import time
from pathlib import Path

import numpy as np
import torch

from torch_wm_backend.world_model import dataset, hardware
from torch_wm_backend.world_model.adapter import load_weights, weights_file
from torch_wm_backend.world_model.blend import Scale
from torch_wm_backend.world_model.collect import parse_target
from torch_wm_backend.world_model.network import Ensemble
from torch_wm_backend.world_model.trainer import score_groups


def _ms_inputs(g, target):
    from tvm.s_tir import meta_schedule as ms

    ctx = ms.TuneContext(mod=g.mod, target=target, num_threads=1)
    cands = [r.as_measure_candidate() for r in g.records]
    results = [ms.runner.RunnerResult(r.run_secs, None) for r in g.records]
    return ctx, cands, results


def _patch_steplr() -> None:
    """TVM's MLP trainer passes ``verbose=`` to StepLR, which torch 2.13 no longer accepts."""
    sched = torch.optim.lr_scheduler
    if getattr(sched.StepLR, "_wm_patched", False):
        return

    class StepLR(sched.StepLR):
        _wm_patched = True

        def __init__(self, *args, verbose=None, **kwargs):
            super().__init__(*args, **kwargs)

    sched.StepLR = StepLR


def baseline_scores(kind, train, test, target):
    from tvm.s_tir import meta_schedule as ms
    from tvm.s_tir.meta_schedule.cost_model import mlp_model

    t0 = time.time()
    if kind == "xgb":
        model = ms.cost_model.XGBModel(num_warmup_samples=0, adaptive_training=False)
        # XGBModel.update fits anew on all it holds after every call, quadratic in the tasks (its
        # fit took 2,016 s on 10,875 records, results/wm_eval.md); fitted once after the last
        # group, the model is the same
        fit, model._train = model._train, lambda xs, ys: None
        for i, g in enumerate(train):
            model.update(*_ms_inputs(g, target))
            # a group per task and batch, as the world model's (XGBModel's would join a task's
            # batches: it keys its groups by workload)
            for key in [k for k in model.data if not k.startswith("group ")]:
                model.data[f"group {i}"] = model.data.pop(key)
        model._train = fit
        fit(xs=[f for g in model.data.values() for f in g.features],
            ys=np.concatenate([np.divide(g.min_cost, g.costs, out=np.zeros_like(g.costs),
                                         where=g.costs != 0) for g in model.data.values()]))
    else:
        _patch_steplr()
        trainer = mlp_model.SegmentSumMLPTrainer()
        for g in train:
            ctx, cands, results = _ms_inputs(g, target)
            feats, costs = mlp_model.extract_features(ctx, cands, results, trainer.state.extractor)
            trainer.state.add_to_group(feats, costs, f"{g.network} {g.key} {g.batch}")
        trainer.train_full()
        model = mlp_model.MLPModel(trainer=trainer)
    fit = time.time() - t0
    scores = []
    for g in test:
        ctx, cands, _ = _ms_inputs(g, target)
        scores.append(np.asarray(model.predict(ctx, cands)))
    return scores, fit


def top1_difference(test, scores_a, scores_b, resamples: int = 2000) -> dict:
    """Top-1 score of a minus b, with a 90% interval from resampling the test tasks (the score is
    weighted by task time, so a few heavy tasks can decide it)."""
    rng = np.random.default_rng(0)
    diff = lambda idx: (dataset.ranking_metrics([test[i] for i in idx], [scores_a[i] for i in idx])["top1"]
                        - dataset.ranking_metrics([test[i] for i in idx], [scores_b[i] for i in idx])["top1"])
    n = len(test)
    boot = [diff(rng.integers(0, n, n)) for _ in range(resamples)]
    return {"difference": float(diff(np.arange(n))), "p05": float(np.percentile(boot, 5)),
            "p95": float(np.percentile(boot, 95))}


GAPS = (1.0, 1.05, 1.2, 2.0, math.inf)  # slower / faster candidate's latency: the pairs' bands


def pairwise_by_gap(test, scores) -> list:
    """Pairwise accuracy within each band of GAPS (tied scores count half): how far apart two
    candidates' latencies are decides how often any model orders them right; pairs a few percent
    apart are within the measurements' noise."""
    right, count = np.zeros(len(GAPS) - 1), np.zeros(len(GAPS) - 1)   # per band
    for g, s in zip(test, scores):
        c = np.asarray(g.costs)
        i, j, outcome = dataset.pair_outcomes(c, s)
        band = np.digitize(np.maximum(c[i], c[j]) / np.minimum(c[i], c[j]), GAPS) - 1
        np.add.at(right, band, outcome)
        np.add.at(count, band, 1)
    top = lambda k: GAPS[k + 1] if math.isfinite(GAPS[k + 1]) else None
    return [{"from": GAPS[k], "to": top(k), "pairs": int(count[k]),
             "pairwise_acc": float(right[k] / max(count[k], 1))} for k in range(len(count))]


def heaviest_picks(test, scores_by_model: dict, n: int = 8) -> list:
    """The ``n`` tasks that weigh most in top-1 (weight x best latency): each model's first pick's
    latency as a fraction of the best's (1: it picked the best), and the task's share of the weight."""
    heavy = [g.weight * float(np.min(g.costs)) for g in test]
    rows = []
    for k in np.argsort(heavy)[::-1][:n]:
        g = test[k]
        rows.append({"network": g.network, "task": g.key[:12], "candidates": len(g.costs),
                     "share": heavy[k] / sum(heavy),
                     "best_over_pick": {m: float(np.min(g.costs) / g.costs[int(np.argmax(sc[k]))])
                                        for m, sc in scores_by_model.items()}})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", default="benchmarks/work/wm_data")
    ap.add_argument("--target", default="cpu", help="cpu, cuda or cuda:sm_XY: the records' target")
    ap.add_argument("--weights", default=None, help="default: the shipped weights for the target")
    ap.add_argument("--out", default="benchmarks/results")
    ap.add_argument("--refit", action="store_true", help="fit the baselines again, not from benchmarks/work")
    ap.add_argument("--compare", nargs="*", default=[], metavar="NAME=WEIGHTS",
                    help="other weights scored on the same test records (e.g. v1=<the shipped ones>)")
    args = ap.parse_args()
    target = parse_target(args.target)
    kind = target.kind.name
    args.weights = args.weights or str(weights_file(kind))
    stem = "wm_eval" if kind == "llvm" else f"wm_eval_{kind}"
    held_out = dataset.eval_networks(args.data)
    nets = dataset.networks_in(args.data)
    meta_path = Path(args.weights).with_suffix(".json")
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    train_nets = meta.get("train_networks") or [n for n in nets if n not in held_out]
    test_nets = [n for n in nets if n in held_out]
    train = dataset.load_groups(args.data, train_nets, target, keep_mod=True)
    test = dataset.load_groups(args.data, test_nets, target, keep_mod=True)
    # the records' thread count (the trainer's): one for train and test, or an error
    n_threads = dataset.check_threads(args.data, train_nets + test_nets)
    hw = torch.from_numpy(hardware.hardware_features(target, n_threads if kind == "llvm" else None))[None]
    res = {"target": str(target), "train_networks": train_nets, "test_networks": test_nets,
           "train_tasks": len(train), "train_records": int(sum(len(g.costs) for g in train)),
           "test_tasks": len(test), "test_records": int(sum(len(g.costs) for g in test)), "models": {}}
    net = load_weights(args.weights)
    wm_scores = score_groups(net, test, hw)
    res["models"]["wm"] = dataset.ranking_metrics(test, wm_scores)
    if isinstance(net, Ensemble):
        # wm scores a batch of more than min_shortlist candidates as a cascade (network.Ensemble);
        # the test tasks are smaller, so here it is engaged by force, at its ratio, on every task
        # each member alone: how far networks trained alike, from other seeds, part on this test
        for k, member in enumerate(net.members):
            res["models"][f"wm: member {k + 1} alone"] = dataset.ranking_metrics(
                test, score_groups(member, test, hw))
        keep, net.min_shortlist = net.min_shortlist, 1
        res["models"][f"wm: cascade on every task (shortlist 1/{round(1 / net.shortlist)})"] = \
            dataset.ranking_metrics(test, score_groups(net, test, hw))
        net.min_shortlist = keep
        res["wm_min_shortlist"] = keep
    compared = {}
    for item in args.compare:
        label, _, path = item.rpartition("=")
        name = f"wm {label or path}"
        compared[name] = score_groups(load_weights(path), test, hw)
        res["models"][name] = dataset.ranking_metrics(test, compared[name])
    rng = np.random.default_rng(0)
    rand_scores = [rng.random(len(g.costs)) for g in test]
    res["models"]["random"] = dataset.ranking_metrics(test, rand_scores)
    baseline_scores_by_name = {}
    # The baselines do not change when only the world model does: their test scores are kept under
    # benchmarks/work, keyed by the records they learn from and are scored on (XGB fits for ~15 min).
    key = hashlib.sha256(json.dumps([str(target), train_nets, test_nets, [
        (g.network, g.key, g.batch, g.costs.tolist()) for g in train + test]]).encode()).hexdigest()[:16]
    kept = Path("benchmarks/work") / f"wm_eval_baselines_{key}.pkl"
    done = pickle.loads(kept.read_bytes()) if kept.exists() and not args.refit else {}
    for baseline in ("xgb", "mlp"):
        try:
            if baseline not in done:
                done[baseline] = baseline_scores(baseline, train, test, target)
                kept.parent.mkdir(parents=True, exist_ok=True)
                kept.write_bytes(pickle.dumps(done))
            scores, fit = done[baseline]
            baseline_scores_by_name[baseline] = scores
            res["models"][baseline] = {**dataset.ranking_metrics(test, scores), "fit_seconds": round(fit, 1)}
        except Exception as err:  # noqa: BLE001 - report a failing baseline, keep the others
            res["models"][baseline] = {"error": repr(err)[:300]}
    if "xgb" in baseline_scores_by_name:
        # what XGB's view of the replayed program adds to the world model's: their scores blended
        # per task (z-scores, XGB at half weight), as the "wm+xgb" cost model blends them online
        z = lambda s: Scale.of(np.asarray(s))(np.asarray(s))
        blend = [z(w) + 0.5 * z(x) for w, x in zip(wm_scores, baseline_scores_by_name["xgb"])]
        compared["wm + xgb/2 (per-task z-scores)"] = blend
        res["models"]["wm + xgb/2 (per-task z-scores)"] = dataset.ranking_metrics(test, blend)
    all_scores = {"wm": wm_scores, **compared, "random": rand_scores, **baseline_scores_by_name}
    res["pairwise_by_gap"] = {name: pairwise_by_gap(test, sc) for name, sc in all_scores.items()}
    res["heaviest_picks"] = heaviest_picks(test, all_scores)
    res["top1_difference_bootstrap"] = {
        b: top1_difference(test, all_scores["wm"], all_scores[b]) for b in all_scores if b != "wm"}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(res, indent=1))
    lines = [f"# World model offline accuracy, {kind} (held-out networks: {', '.join(test_nets)})", "",
             f"Training: {res['train_records']} records / {res['train_tasks']} tasks from "
             f"{len(train_nets)} networks. Test: {res['test_records']} records / "
             f"{res['test_tasks']} tasks. Fit time: wm {meta.get('train_seconds', '?')} s "
             f"(`tvm-wm train --members {meta.get('members', 1)}`, {meta.get('steps', '?')} steps each), "
             + ", ".join(f"{k} {m['fit_seconds']} s" for k, m in res["models"].items() if "fit_seconds" in m)
             + ".", "",
             (f"wm is an ensemble of {len(net.members)}: a batch of more than "
                f"{net.min_shortlist} candidates is scored as a cascade (the first member scores "
                f"all, the others its best 1/{round(1 / net.shortlist)}); the largest test task has "
                f"{max(len(g.costs) for g in test)} records." if isinstance(net, Ensemble) else ""),
             "", "| model | pairwise acc | top-1 | top-5 |", "|---|---|---|---|"]
    for name, m in res["models"].items():
        if "error" in m:
            lines.append(f"| {name} | error: {m['error'][:80]} | | |")
        else:
            lines.append(f"| {name} | {m['pairwise_acc']:.3f} | {m['top1']:.3f} | {m['top5']:.3f} |")
    lines += ["", "Top-1 of wm minus each other model, with a 90% interval from resampling the test tasks "
              "(2,000 resamples):", "", "| wm minus | top-1 difference | 90% interval |", "|---|---|---|"]
    for name, d in res["top1_difference_bootstrap"].items():
        lines.append(f"| {name} | {d['difference']:+.3f} | {d['p05']:+.3f} to {d['p95']:+.3f} |")
    bands = next(iter(res["pairwise_by_gap"].values()))
    band = lambda b: f"×{b['from']:g} to ×{b['to']:g}" if b["to"] else f"×{b['from']:g} or more"
    lines += ["", "Pairwise accuracy by how far apart the pair's latencies are (slower / faster; pairs in "
              "each band: " + ", ".join(f"{band(b)} {b['pairs']}" for b in bands) + "):", "",
              "| model | " + " | ".join(band(b) for b in bands) + " |", "|---" * (len(bands) + 1) + "|"]
    for name, rows in res["pairwise_by_gap"].items():
        lines.append(f"| {name} | " + " | ".join(f"{b['pairwise_acc']:.3f}" for b in rows) + " |")
    names = list(all_scores)
    lines += ["", "The tasks that weigh most in top-1: each model's first pick, best latency / the pick's "
              "(1: the best picked):", "",
              "| network | task | candidates | share of the weight | " + " | ".join(names) + " |",
              "|---" * (len(names) + 4) + "|"]
    for r in res["heaviest_picks"]:
        lines.append(f"| {r['network']} | {r['task']} | {r['candidates']} | {r['share']:.3f} | "
                     + " | ".join(f"{r['best_over_pick'][m]:.2f}" for m in names) + " |")
    (out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
