"""A model's tuning curve: its kernels' summed latency as the trials were measured, from a cache.

    python benchmarks/tuning_curve.py mobilenet_v2 [--cache benchmarks/work/e2e/tvm_wm_wm_t64]

Lowers the model as the backend does (one module, frozen weights), extracts its tasks with their
weights (calls per model call), and replays the cache's tuning records in the order they were
written: after n trials the curve is Σ weight × best latency so far, each task starting from its
default kernel (trial 0: no search at all). No kernel is run: these are the tuner's own measurements. The sum leaves out what
lies between kernels (the VM, allocations), so it sits below the model's measured latency.
Writes results/tuning_curve_<model>.{json,png}.
"""
import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
RESULTS = os.path.join(HERE, "results")


def model_tasks(name: str, target, layout: str = "NCHW", weight_layouts: bool = False) -> tuple:
    """(tasks, weights) of ``name`` lowered as the backend lowers an inference graph."""
    import zoo
    from torch_wm_backend.world_model.collect import network_tasks

    tasks = network_tasks(zoo, name, target, layout, weight_layouts)
    return tasks, [float(t.weight) for t in tasks]


def _records(folder: str):
    """(workload hash, is default, mean seconds or None) per record line, in the order written."""
    from torch_wm_backend.cache.records import TUNING_RECORDS, WORKLOADS

    hashes = [json.loads(line)[0] for line in open(os.path.join(folder, WORKLOADS))]
    for line in open(os.path.join(folder, TUNING_RECORDS)):
        index, (trace, run_secs, *_rest) = json.loads(line)
        secs = [float(s) for s in run_secs or [] if float(s) < 1e9]  # MetaSchedule's 1e10: failed
        yield hashes[index], len(trace[1]) == 0, sum(secs) / len(secs) if secs else None


def curve(tasks: list, weights: list, folder: str) -> dict:
    """Σ weight × best latency after each searched trial. Every task starts from its default kernel
    (measured beside the search, wherever its record lies in the file): what a build without a
    search would use; the searched records then count in the order they were written."""
    import tvm_ffi

    index = {str(tvm_ffi.structural_hash(t.dispatched[0])): i for i, t in enumerate(tasks)}
    records = [(index[h], default, secs) for h, default, secs in _records(folder) if h in index]
    best = [None] * len(tasks)

    def better(i, secs):
        if secs is not None and (best[i] is None or secs < best[i]):
            best[i] = secs

    for i, default, secs in records:
        if default:
            better(i, secs)
    missing = [tasks[i].task_name for i, b in enumerate(best) if b is None]
    if missing:
        return {"points": [], "tasks": len(tasks), "trials": 0, "tasks_without_default": missing}
    points, trials = [[0, sum(w * b for w, b in zip(weights, best)) * 1e3]], 0
    for i, default, secs in records:
        if default:
            continue
        trials += 1
        better(i, secs)
        points.append([trials, sum(w * b for w, b in zip(weights, best)) * 1e3])
    return {"points": points, "tasks": len(tasks), "trials": trials, "tasks_without_default": []}


def plot(path: str, name: str, runs: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    for label, run in runs.items():
        if not run["points"]:
            continue
        xs, ys = zip(*run["points"])
        ax.step(xs, ys, where="post", label=f"{label} ({run['tasks']} tasks)")
    ax.set_xlabel("trials measured (all tasks)")
    ax.set_ylabel("Σ calls × best kernel latency (ms, log)")
    ax.set_title(f"{name}: tuning curve (the tuner's measurements)", fontsize=9)
    ax.set_yscale("log")  # default kernels are ×10 slower than tuned ones: the end needs the room
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("--cache", nargs="+", default=[os.path.join(HERE, "work", "e2e", "tvm_wm_wm_t64")],
                        help="cache directories (one curve each, labelled by the folder's name)")
    args = parser.parse_args()
    import torch

    from machine import describe
    from torch_wm_backend.cache.records import TUNING_RECORDS, records_dir
    from torch_wm_backend.lower.target import target_for

    target = target_for(torch.device("cpu"))
    tasks, weights = model_tasks(args.model, target)
    runs = {}
    for cache in args.cache:
        folder = records_dir(cache, target)
        if not (folder / TUNING_RECORDS).exists():
            raise SystemExit(f"{cache}: no tuning records for {target}")
        runs[os.path.basename(os.path.normpath(cache))] = curve(tasks, weights, str(folder))
    out = {"machine": describe(), "model": args.model, "runs": runs}
    os.makedirs(RESULTS, exist_ok=True)
    json.dump(out, open(os.path.join(RESULTS, f"tuning_curve_{args.model}.json"), "w"), indent=1)
    plot(os.path.join(RESULTS, f"tuning_curve_{args.model}.png"), args.model, runs)
    for label, run in runs.items():
        if not run["points"]:
            print(f"{label}: no default kernel recorded for {run['tasks_without_default']}")
            continue
        first, last = run["points"][0], run["points"][-1]
        print(f"{label}: {first[1]:.2f} ms (default kernels) -> {last[1]:.2f} ms after {last[0]} trials "
              f"({run['tasks']} tasks)")


if __name__ == "__main__":
    main()
