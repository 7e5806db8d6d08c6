"""The paper's protocol on the representative subgraphs: cost models at the same budget.

    python benchmarks/protocol.py run     # resumable: one MetaSchedule JSON database per run under
                                          # benchmarks/work/protocol_t<TVM threads>/<subgraph>/<variant>_s<seed>_t<trials>/
    python benchmarks/protocol.py run --only wm-screen8   # some variants only
    python benchmarks/protocol.py report  # tables, tuning curves and the speedup bar chart
    TVM_WM_PROTOCOL_WORK=DIR python benchmarks/protocol.py run --only wm wm-v2.0 --subgraphs mobilenet
    TVM_WM_PROTOCOL_WORK=DIR python benchmarks/protocol.py report --out FOLDER   # a re-check apart
    python benchmarks/protocol.py run --only wm wm-ridge --seeds 0 --subgraphs gpt2   # interleave
    python benchmarks/protocol.py run --only wm xgb --no-long --subgraphs gpt2       # no xgb@640

Runs: wm and xgb with seeds 0-2 and random with seed 0, 64 trials each (4 rounds of 16: the
cost model learns between rounds), identical search settings (tune/search.py, tune/tuner.py:
make_builder, make_runner); xgb with 640 trials (seed 0) on every subgraph as the large-budget
reference; and the world model's levers one at a time (seed 0, 64 trials: ``VARIANTS``; seeds 1-2 too
for those in ``CONFIRM``). Per run the
best measured latency, the best-so-far curve over trials and the seconds at which each trial was
measured (``times.json``: the time to reach a latency).
"""
import argparse
import json
import math
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
RESULTS = os.path.join(HERE, "results")


def _plan(**kw):
    from torch_wm_backend.tune.search import SearchPlan

    return SearchPlan(**kw)


# name: (cost model, search plan options, world-model options). Besides wm, xgb and random, each
# changes one lever of wm's: no online update, a pull towards the trained weights, a population
# of 2,048, 16 generations per round, 8 unbuilt mutations scored per population member, the
# online update's strength: 100 Adam steps per round instead of 30, a learning rate of 3e-3
# instead of 1e-3 (how fast a task's copy learns from the task's own measurements), the online
# update in closed form (a ridge refit of the trained network's score per task,
# world_model/calibrate.py, instead of Adam steps on a copy of it), the Adam steps with XGB beside
# them, each weighted by how well it ranked the task's last rounds (world_model/blend.py), and other weights: v2.0 (the
# former shipped ones, 1,500 steps of 8 tasks) and v2.1 (`tvm-wm train --members 4 --steps 4000
# --batch 16`, the shipped ones since 2026-12-06: as a lever, a measure of run-to-run noise).
DATA = os.path.join(HERE, "data")
VARIANTS = {
    "wm": ("wm", {}, {}), "xgb": ("xgb", {}, {}), "random": ("random", {}, {}),
    "wm-frozen": ("wm", {}, {"online_steps": 0}),
    "wm-pull": ("wm", {}, {"prior_weight": 1e-2}),
    "wm-pop2048": ("wm", {"population": 2048}, {}),
    "wm-gen16": ("wm", {"generations": 16}, {}),
    "wm-screen8": ("wm", {"screen": 8}, {}),
    "wm-steps100": ("wm", {}, {"online_steps": 100}),
    "wm-lr3e-3": ("wm", {}, {"lr": 3e-3}),
    "wm-ridge": ("wm", {}, {"online": "ridge"}),
    "wm-blend": ("wm+xgb", {}, {}),
    "wm-v2.0": ("wm", {}, {"weights": os.path.join(DATA, "wm_cpu_v2.0.pt")}),
    "wm-v2.1": ("wm", {}, {"weights": os.path.join(DATA, "wm_cpu_v2.1.pt")}),
}
LEVERS = [v for v in VARIANTS if v.startswith("wm-")]
# Levers that also run with seeds 1 and 2, as a default is decided on three seeds: the pull towards
# the trained weights (prior_weight 1e-2) was wm's default until its 30 runs found slower kernels;
# the weights shipped before (v2.0) against those shipped now; XGB beside the fine-tune.
CONFIRM = ["wm-pull", "wm-v2.0", "wm-blend"]


def work_root() -> str:
    """Runs measured at different TVM thread counts are kept apart."""
    from torch_wm_backend import threads

    return os.environ.get("TVM_WM_PROTOCOL_WORK",
                          os.path.join(HERE, "work", f"protocol_t{threads.count()}"))


def runs(n_subgraphs: int, trials: int = 64) -> list:
    """[(subgraph index, variant, seed, trials)], in the order the protocol measures them: seed 0
    of wm, xgb and random first, then the levers, the other seeds, xgb at ten times the trials, the
    other seeds of the levers in ``CONFIRM``."""
    out = [(i, cm, 0, trials) for i in range(n_subgraphs) for cm in ("wm", "xgb")]
    out += [(i, "random", 0, trials) for i in range(n_subgraphs)]
    out += [(i, v, 0, trials) for v in LEVERS for i in range(n_subgraphs)]
    for seed in (1, 2):
        out += [(i, cm, seed, trials) for i in range(n_subgraphs) for cm in ("wm", "xgb")]
    out += [(i, "xgb", 0, 10 * trials) for i in range(n_subgraphs)]
    out += [(i, v, seed, trials) for seed in (1, 2) for v in CONFIRM for i in range(n_subgraphs)]
    return out


def run_dir(name: str, cm: str, seed: int, trials: int) -> str:
    return os.path.join(work_root(), name.replace("/", "__"), f"{cm}_s{seed}_t{trials}")


def curve(directory: str) -> list:
    """Best-so-far latency (seconds) after each measured trial, in measurement order."""
    path = os.path.join(directory, "database_tuning_record.json")
    best, out = math.inf, []
    if os.path.exists(path):
        for line in open(path):
            secs = json.loads(line)[1][1]
            if secs:
                best = min(best, sum(secs) / len(secs))
            out.append(best)
    return out


def wall_s(directory: str) -> float:
    """Search + build + measure seconds of a run: first write of its database to its last record
    (a resumed run counts its pauses too)."""
    first = os.path.getmtime(os.path.join(directory, "database_workload.json"))
    return os.path.getmtime(os.path.join(directory, "database_tuning_record.json")) - first


def _mean_at(cs: list, t: int) -> float:
    """Best-so-far latency after t trials, averaged over a cost model's runs (seeds)."""
    return sum(c[t - 1] for c in cs) / len(cs)


def _clock(path: str):
    """A measure callback: the seconds since the run began at which each trial was measured,
    appended to ``path`` (``times.json``; a resumed run continues the clock from its last entry)."""
    from tvm.ir.utils import derived_object
    from tvm.s_tir.meta_schedule.measure_callback import PyMeasureCallback

    @derived_object
    class Clock(PyMeasureCallback):
        def __init__(self):
            super().__init__()
            self.times = json.load(open(path)) if os.path.exists(path) else []
            self.start = time.time() - (self.times[-1] if self.times else 0.0)

        def apply(self, task_scheduler, task_id, measure_candidates, builder_results, runner_results):
            self.times += [time.time() - self.start] * len(measure_candidates)
            with open(path, "w") as f:
                json.dump(self.times, f)

    return Clock()


def tune_one(task, target, variant: str, seed: int, trials: int, directory: str) -> None:
    from tvm.s_tir import meta_schedule as ms

    from torch_wm_backend.lower.target import _cpu_cores
    from torch_wm_backend.settings import Settings
    from torch_wm_backend.tune import cost_models
    from torch_wm_backend.tune.tuner import _contexts, make_builder, make_runner, per_round

    done = len(curve(directory))
    if done >= trials:
        return
    os.makedirs(directory, exist_ok=True)
    cm, plan, options = VARIANTS[variant]
    if not os.path.exists(options.get("weights", HERE)):   # the world model would start untrained
        raise SystemExit(f"{variant}: no weights at {options['weights']}")
    cores = _cpu_cores()
    settings = Settings(trials=trials, cost_model=cm, seed=seed + done, cache_dir=None, time_budget_s=None)
    cost_model = cost_models.create(cm, target, cores, **options)
    contexts, weights = _contexts([task], [1.0], settings, cores, _plan(**plan), cost_model)
    builder = make_builder(cores)
    try:
        ms.tune_tasks(tasks=contexts, task_weights=weights, work_dir=directory,
                      max_trials_global=trials - done, max_trials_per_task=trials - done,
                      num_trials_per_iter=per_round(trials), builder=builder, runner=make_runner(settings, target),
                      database=ms.database.JSONDatabase(work_dir=directory), cost_model=cost_model,
                      measure_callbacks=[*ms.MeasureCallback.create("default"),
                                         _clock(os.path.join(directory, "times.json"))])
    finally:
        builder.shutdown()


def cmd_run(args) -> None:
    from tqdm import tqdm

    from subgraphs import representative

    chosen = representative()
    names = [c[0] for c in chosen]
    missing = [t for t in args.subgraphs or [] if not any(t in n for n in names)]
    if missing:
        raise SystemExit(f"--subgraphs: no subgraph's name contains {', '.join(missing)}; "
                         f"the subgraphs: {', '.join(names)}")
    seeds = sorted({r[2] for r in runs(len(chosen), args.trials)})
    if args.seeds is not None and not set(args.seeds) <= set(seeds):
        raise SystemExit(f"--seeds: the protocol runs seeds {', '.join(map(str, seeds))}, not "
                         f"{', '.join(str(x) for x in args.seeds if x not in seeds)}")
    todo = [r for r in runs(len(chosen), args.trials) if (not args.only or r[1] in args.only)
            and (not args.subgraphs or any(s in chosen[r[0]][0] for s in args.subgraphs))
            and (args.seeds is None or r[2] in args.seeds) and not (args.no_long and r[3] > args.trials)]
    bar = tqdm(todo, desc="protocol", unit="run")
    for i, cm, seed, trials in bar:
        name, task = chosen[i][0], chosen[i][1]
        bar.set_postfix_str(f"{name} {cm} s{seed} t{trials}")
        tune_one(task, task.target, cm, seed, trials, run_dir(name, cm, seed, trials))


def time_to(directory: str, best_so_far: list, latency: float) -> float | None:
    """Seconds from a run's start until its best-so-far latency (``best_so_far``: its ``curve``)
    was ``latency`` or better (None: never, or no clock)."""
    path = os.path.join(directory, "times.json")
    if not os.path.exists(path):
        return None
    times = json.load(open(path))
    for t, best in zip(times, best_so_far):
        if best <= latency:
            return t
    return None


def _geo(xs: list) -> float:
    return math.exp(sum(map(math.log, xs)) / len(xs)) if xs else float("nan")


def _finals(done: dict, trials: int) -> dict:
    """{(subgraph, seed): {variant: best latency}} of the runs of ``trials`` trials: runs to pair."""
    final = {}
    for (name, v, seed, t), c in done.items():
        if t == trials:
            final.setdefault((name, seed), {})[v] = c[-1]
    return final


def _spread(r: list, faster: str) -> dict:
    """Run-against-run ratios (above 1: the run in the denominator was faster): their count,
    geomean, min, max, and under ``faster`` how many are above 1."""
    return {"n": len(r), "geomean": _geo(r), "min": min(r), "max": max(r), faster: sum(x > 1 for x in r)}


def _spread_cells(s: dict, faster: str) -> str:
    return f"×{s['geomean']:.3f} | ×{s['min']:.3f} | ×{s['max']:.3f} | {s[faster]} of {s['n']}"


def _levers(final: dict, trials: int, lines: list) -> dict:
    """Each lever against wm with the same seed (``final``: `_finals`): the ratio of best
    latencies, geomean over the (subgraph, seed) pairs both completed."""
    out, rows = {}, []
    for v in LEVERS:
        pairs = {k: b["wm"] / b[v] for k, b in final.items() if "wm" in b and v in b}
        if pairs:
            seeds = sorted({seed for _, seed in pairs})
            out[v] = {**_spread(list(pairs.values()), "faster"), "seeds": seeds}
            rows.append(f"| {v} | {len(pairs)} | {','.join(map(str, seeds))} | "
                        f"{_spread_cells(out[v], 'faster')} |")
    if rows:   # a run of cost models alone has no levers: no empty table
        lines += ["", f"The world model's levers, one at a time ({trials} trials): best latency of wm with its "
                  "defaults / with the lever, run against run with the same seed; above 1 the lever found "
                  "faster kernels.", "",
                  "| lever | runs (subgraph, seed) | seeds | geomean | min | max | faster in |",
                  "|---|---|---|---|---|---|---|"] + rows
    return out


def _against(final: dict, trials: int, lines: list) -> dict:
    """xgb and random against wm run by run (``final``: `_finals`; same subgraph, same seed): how
    often wm was faster."""
    out, rows = {}, []
    for other in ("xgb", "random"):
        r = [b[other] / b["wm"] for b in final.values() if "wm" in b and other in b]
        if r:
            out[other] = _spread(r, "wm_faster")
            rows.append(f"| {other}@{trials} / wm@{trials} | {len(r)} | {_spread_cells(out[other], 'wm_faster')} |")
    if rows:
        lines += ["", "Run against run (same subgraph, same seed): latency of the other cost model / wm's; "
                  "above 1 wm found the faster kernel.", "",
                  "| ratio | runs | geomean | min | max | wm faster in |", "|---|---|---|---|---|---|"] + rows
    return out


def _reach(done: dict, trials: int, best: dict, lines: list) -> dict:
    """Tuning wall time (search + build + measure) until a run matched xgb@64's final latency (its
    mean over seeds) on the subgraph."""
    found: dict = {}
    for (name, v, seed, t), c in done.items():
        target = best.get(name, {}).get(f"xgb@{trials}")
        if target is not None:
            found.setdefault(f"{v}@{t}", []).append(time_to(run_dir(name, v, seed, t), c, target))
    out = {}
    if found:   # no xgb run, no target: no empty table
        lines += ["", f"Time to reach xgb@{trials}'s final latency (its mean over seeds), per run: runs that "
                  "reached it, and their median seconds from the run's start.", "",
                  "| variant | runs | reached | median s |", "|---|---|---|---|"]
    for k, ts in sorted(found.items()):
        hit = sorted(x for x in ts if x is not None)
        med = hit[len(hit) // 2] if hit else None
        out[k] = {"runs": len(ts), "reached": len(hit), "median_s": med}
        lines.append(f"| {k} | {len(ts)} | {len(hit)} | {med:.0f} |" if hit else f"| {k} | {len(ts)} | 0 | - |")
    return out


def _long_reach(curves: dict, best: dict, trials: int, lines: list) -> dict:
    """Trials xgb at ten times the budget took to reach wm@``trials``'s final latency (its mean over
    seeds), per subgraph (None: never)."""
    long = f"xgb@{10 * trials}"
    out = {}
    for name, c in curves.items():
        if long in c and f"wm@{trials}" in best[name]:
            target = best[name][f"wm@{trials}"]
            out[name] = next((t + 1 for t, x in enumerate(c[long][0]) if x <= target), None)
    if out:
        lines += ["", f"Trials {long} took to reach wm@{trials}'s final latency (its mean over seeds):", "",
                  f"| subgraph | trials of {long} |", "|---|---|"]
        lines += [f"| {n} | {t if t is not None else 'never'} |" for n, t in out.items()]
    return out


def cmd_report(args) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from machine import describe, heading
    from subgraphs import representative, write

    os.makedirs(args.out, exist_ok=True)
    chosen = representative()
    print(write(chosen))
    done = {}  # (subgraph, variant, seed, trials): curve of each completed run, read once
    # the planned runs, and any other seed of a variant a re-check ran (run --only ... --seeds)
    every = runs(len(chosen), args.trials)
    every += sorted({(i, v, seed, t) for i, _, _, t in every for v in VARIANTS for seed in (0, 1, 2)} - set(every))
    for i, cm, seed, trials in every:
        c = curve(run_dir(chosen[i][0], cm, seed, trials))
        if len(c) >= trials and math.isfinite(c[-1]):
            done[(chosen[i][0], cm, seed, trials)] = c
    table, curves, walls = {}, {}, {}
    for (name, cm, seed, trials), c in done.items():
        table.setdefault(name, {}).setdefault(f"{cm}@{trials}", []).append(c[-1])
        curves.setdefault(name, {}).setdefault(f"{cm}@{trials}", []).append(c)
        walls.setdefault(f"{cm}@{trials}", []).append(wall_s(run_dir(name, cm, seed, trials)))
    if not table:
        print("no completed runs yet")
        return
    best = {n: {k: sum(v) / len(v) for k, v in runs_.items()} for n, runs_ in table.items()}
    pairs = [("xgb@64", "wm@64"), ("random@64", "wm@64"), (f"xgb@{10 * args.trials}", "wm@64")]
    pairs += [("xgb@64", f"{v}@64") for v in CONFIRM]   # levers on three seeds against the same XGB runs
    flops = {name: f for name, _, f, _ in chosen}
    keys = ("wm@64", "xgb@64", "random@64", f"xgb@{10 * args.trials}")
    lines = ["| subgraph | MFLOP | " + " | ".join(f"{k} (us)" for k in keys) + " | wm GFLOP/s |",
             "|---|---|---|---|---|---|---|"]
    for name, b in best.items():
        cells = [f"{b[k] * 1e6:.1f}" if k in b else "-" for k in keys]
        gflops = f"{flops[name] / b['wm@64'] / 1e9:.0f}" if "wm@64" in b else "-"
        lines.append(f"| {name} | {flops[name] / 1e6:.0f} | " + " | ".join(cells) + f" | {gflops} |")
    summary, rows = {}, []
    for a, b in pairs:
        ratios = [v[a] / v[b] for v in best.values() if a in v and b in v]
        if ratios:
            geo = _geo(ratios)
            summary[f"{a}/{b}"] = {"n": len(ratios), "geomean": geo, "mean": sum(ratios) / len(ratios)}
            rows.append(f"| {a} / {b} | {len(ratios)} | ×{geo:.3f} | ×{sum(ratios) / len(ratios):.3f} |")
    if rows:
        lines += ["", "| ratio (latency a / latency b) | subgraphs | geomean | mean |", "|---|---|---|---|"] + rows
    def present(a, b):
        return any(a in c and b in c for c in curves.values())

    by_trial = {}
    evolving = [p for p in pairs[:2] + [("xgb@64", f"{v}@64") for v in CONFIRM] if present(*p)]
    levers = [p for p in (("wm@64", f"{v}@64") for v in LEVERS) if present(*p)]
    for title, chosen_pairs in (("how the cost models' leads evolve", evolving),
                                ("how each lever's effect evolves (above 1: the lever is ahead)", levers)):
        if not chosen_pairs:
            continue
        lines += ["", "Best latency found after t trials (mean over seeds per subgraph, geomean of the ratio "
                  f"over subgraphs): {title}.", "",
                  "| trials | " + " | ".join(f"{a} / {b}" for a, b in chosen_pairs) + " |",
                  "|---" * (len(chosen_pairs) + 1) + "|"]
        for t in sorted({1, 2, 4, 8, 16, 32, args.trials}):
            row = []
            for a, b in chosen_pairs:
                ratios = [_mean_at(c[a], t) / _mean_at(c[b], t) for c in curves.values() if a in c and b in c]
                geo = _geo(ratios)
                by_trial.setdefault(f"{a}/{b}", {})[t] = geo
                row.append(f"×{geo:.2f}")
            lines.append(f"| {t} | " + " | ".join(row) + " |")
    summary["by_trial"] = by_trial
    final = _finals(done, args.trials)
    summary["run_against_run"] = _against(final, args.trials, lines)
    summary["levers"] = _levers(final, args.trials, lines)
    summary["time_to_xgb64"] = _reach(done, args.trials, best, lines)
    summary["long_xgb_to_wm"] = _long_reach(curves, best, args.trials, lines)
    planned = runs(len(chosen), args.trials)
    lines += ["", f"Runs complete: {sum(map(len, walls.values()))} of {len(planned)} planned.", "",
              "| cost model @ trials | runs | mean wall time per run (s): search + build + measure |",
              "|---|---|---|"]
    lines += [f"| {k} | {len(v)} | {sum(v) / len(v):.0f} |" for k, v in sorted(walls.items())]
    machine = describe()
    json.dump({"machine": machine, "best_s": best, "ratios": summary, "runs": {k: len(v) for k, v in walls.items()},
               "wall_s": {k: sum(v) / len(v) for k, v in walls.items()}},
              open(os.path.join(args.out, "protocol.json"), "w"), indent=1)
    head = "\n".join(heading("Protocol: best latency per subgraph (mean over the seeds run)", machine)
                     + ["", "Latency a / latency b above 1: b is faster.", "", ""])
    open(os.path.join(args.out, "protocol.md"), "w").write(head + "\n".join(lines) + "\n")
    cols = min(4, len(curves))
    rows = math.ceil(len(curves) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), squeeze=False)
    for ax, (name, per_cm) in zip(axes.flat, curves.items()):
        for key, cs in per_cm.items():
            n = min(map(len, cs))
            mean = [sum(c[t] for c in cs) / len(cs) * 1e6 for t in range(n)]
            ax.plot(range(1, n + 1), mean, label=key)
        ax.set_title(name, fontsize=8)
        ax.set_xlabel("trials")
        ax.set_ylabel("best latency (us)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(args.out, "protocol_curves.png"), dpi=80)
    names = [n for n in best if "xgb@64" in best[n] and "wm@64" in best[n]]
    if names:
        fig, ax = plt.subplots(figsize=(max(4, len(names)), 3))
        ax.bar(range(len(names)), [best[n]["xgb@64"] / best[n]["wm@64"] for n in names])
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set_xticks(range(len(names)), [n.split("/")[0] + "\n" + n.split("/")[1][:18] for n in names],
                      fontsize=6)
        ax.set_ylabel("speedup of wm over xgb")
        fig.tight_layout()
        fig.savefig(os.path.join(args.out, "protocol_speedup.png"), dpi=80)
    print("\n".join(lines))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["run", "report"])
    parser.add_argument("--trials", type=int, default=64)
    parser.add_argument("--only", nargs="*", choices=sorted(VARIANTS), help="run these variants only")
    parser.add_argument("--subgraphs", nargs="*", metavar="TEXT",
                        help="run only the subgraphs whose name contains one of these")
    parser.add_argument("--seeds", nargs="*", type=int, help="run these seeds only")
    parser.add_argument("--no-long", action="store_true", help="leave out xgb at ten times the trials")
    parser.add_argument("--out", default=RESULTS, help="report into this folder")
    args = parser.parse_args()
    cmd_run(args) if args.command == "run" else cmd_report(args)


if __name__ == "__main__":
    main()
