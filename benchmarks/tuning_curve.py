"""A model's tuning curve: its kernels' summed latency as the trials were measured, from a cache.

    python benchmarks/tuning_curve.py mobilenet_v2 [--cache benchmarks/work/e2e/tvm_wm_wm_t64]

Lowers the model as the backend does (one module, frozen weights), extracts its tasks with their
weights (calls per model call), and replays the cache's tuning records in the order they were
written: after n trials the curve is Σ weight × best latency so far, each task starting from its
default kernel. No kernel is run: these are the tuner's own measurements. The sum leaves out what
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


def model_tasks(name: str, target) -> tuple:
    """(tasks, weights) of ``name`` lowered as the backend lowers an inference graph."""
    import torch

    from eval_models import MODELS
    from torch_wm_backend.lower import to_relax
    from torch_wm_backend.lower.freeze import exported
    from torch_wm_backend.tune import tasks as task_lib

    torch.manual_seed(0)
    build, make_input = MODELS[name]
    with torch.no_grad():
        gm, args, weights = exported(build().eval(), (make_input(),))
        return task_lib.merged([to_relax(gm, args, weights)], target)


def _records(folder: str):
    """(workload hash, is default, mean seconds or None) per record line, in the order written."""
    hashes = [json.loads(line)[0] for line in open(os.path.join(folder, "database_workload.json"))]
    for line in open(os.path.join(folder, "database_tuning_record.json")):
        index, (trace, run_secs, *_rest) = json.loads(line)
        secs = [float(s) for s in run_secs or [] if float(s) < 1e9]  # MetaSchedule's 1e10: failed
        yield hashes[index], len(trace[1]) == 0, sum(secs) / len(secs) if secs else None


def curve(tasks: list, weights: list, folder: str) -> dict:
    import tvm_ffi

    index = {str(tvm_ffi.structural_hash(t.dispatched[0])): i for i, t in enumerate(tasks)}
    best = [None] * len(tasks)
    points, trials = [], 0
    for shash, default, secs in _records(folder):
        i = index.get(shash)
        if i is None:
            continue
        if not default:
            trials += 1
        if secs is not None and (best[i] is None or secs < best[i]):
            best[i] = secs
        if all(b is not None for b in best):
            total = sum(w * b for w, b in zip(weights, best))
            if not points or points[-1][0] != trials:
                points.append([trials, total * 1e3])
            else:
                points[-1][1] = total * 1e3
    missing = [tasks[i].task_name for i, b in enumerate(best) if b is None]
    return {"points": points, "tasks": len(tasks), "trials": trials, "tasks_without_record": missing}


def plot(path: str, name: str, runs: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    for label, run in runs.items():
        xs, ys = zip(*run["points"])
        ax.step(xs, ys, where="post", label=f"{label} ({run['tasks']} tasks)")
    ax.set_xlabel("trials measured (all tasks)")
    ax.set_ylabel("Σ calls × best kernel latency (ms)")
    ax.set_title(f"{name}: tuning curve (the tuner's measurements)", fontsize=9)
    ax.set_ylim(bottom=0)
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
    from torch_wm_backend.cache.records import records_dir
    from torch_wm_backend.lower.target import target_for

    target = target_for(torch.device("cpu"))
    tasks, weights = model_tasks(args.model, target)
    runs = {}
    for cache in args.cache:
        folder = records_dir(cache, target)
        if not (folder / "database_tuning_record.json").exists():
            raise SystemExit(f"{cache}: no tuning records for {target}")
        runs[os.path.basename(os.path.normpath(cache))] = curve(tasks, weights, str(folder))
    out = {"machine": describe(), "model": args.model, "runs": runs}
    os.makedirs(RESULTS, exist_ok=True)
    json.dump(out, open(os.path.join(RESULTS, f"tuning_curve_{args.model}.json"), "w"), indent=1)
    plot(os.path.join(RESULTS, f"tuning_curve_{args.model}.png"), args.model, runs)
    for label, run in runs.items():
        first, last = run["points"][0], run["points"][-1]
        print(f"{label}: {first[1]:.2f} ms at {first[0]} trials -> {last[1]:.2f} ms at {last[0]} "
              f"({run['tasks']} tasks, without a record: {len(run['tasks_without_record'])})")


if __name__ == "__main__":
    main()
