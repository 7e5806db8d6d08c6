"""Batch-1 fp32 latency on a CUDA GPU: eager, Inductor (plain and with its CUDA graphs,
``mode="reduce-overhead"``), tvm_wm untuned (guarded and raw) and tuned; tvm_wm replays a static
module's launches as CUDA graphs (build/build.py).

    python benchmarks/gpu.py run [--out DIR] [--deadline SECONDS] [--trials 8] [--cache DIR]

``--cache``: tvm_wm's cache folder (tuning records included), so a later run resumes the tuning
(default: none, every run starts from nothing).

One subprocess per model (a crash or a timeout loses one model, not the run); variants of a model
are timed side by side in interleaved rounds with CUDA synchronisation. Writes DIR/gpu.json and
DIR/gpu.md after every model, so a run cut short still leaves what it measured.
"""
import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
MODELS = ["mobilenet_v2", "resnet50", "bert_base"]


def variants(trials: int, cache_dir=None) -> dict:
    """name -> torch.compile kwargs (None: eager)."""
    tvm = {"cache_dir": cache_dir, "time_budget_s": None}
    return {
        "eager": None,
        "inductor": {},
        "inductor_reduce_overhead": {"mode": "reduce-overhead"},
        "tvm_wm_untuned": {"backend": "tvm_wm", "options": {**tvm, "trials": 0}},
        "tvm_wm_untuned_noguard": {"backend": "tvm_wm", "options": {**tvm, "trials": 0, "eager_guard": False}},
        f"tvm_wm_wm_t{trials}": {"backend": "tvm_wm", "options": {**tvm, "trials": trials, "cost_model": "wm"}},
    }


def one(name: str, trials: int, deadline: float, cache_dir=None, skip: tuple = ()) -> dict:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    import torch_wm_backend
    from eval_models import MODELS as ZOO
    from machine import interleaved

    torch.manual_seed(0)
    build, make_input = ZOO[name]
    model, x = build().eval().cuda(), make_input().cuda()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        want = model(x)
    result = {"gflop": counter.get_total_flops() / 1e9, "variants": {}}
    fns = {}
    for variant, kwargs in variants(trials, cache_dir).items():
        if variant in skip:
            continue
        if time.time() > deadline:
            result["variants"][variant] = {"skipped": "deadline"}
            continue
        torch_wm_backend.reset_stats()
        if kwargs and kwargs["options"].get("trials"):  # tuning stops at this model's deadline
            kwargs["options"]["time_budget_s"] = max(20.0, deadline - time.time())
        fn = model if kwargs is None else torch.compile(model, **kwargs)
        start = time.perf_counter()
        try:
            with torch.no_grad():
                got = fn(x)
            torch.cuda.synchronize()
        except Exception as e:  # report, keep timing the others
            result["variants"][variant] = {"error": f"{type(e).__name__}: {str(e)[:300]}"}
            continue
        got = got if torch.is_tensor(got) else got[0]
        ref = want if torch.is_tensor(want) else want[0]
        row = {"first_call_s": time.perf_counter() - start,
               "max_abs_diff": (got.float() - ref.float()).abs().max().item()}
        if kwargs and kwargs.get("backend") == "tvm_wm":
            row["stats"] = torch_wm_backend.stats()
        result["variants"][variant] = row
        fns[variant] = fn
    with torch.no_grad():
        readings = interleaved({v: functools.partial(fn, x) for v, fn in fns.items()}, rounds=5,
                               samples=20, warmup=5, sync=torch.cuda.synchronize)
    samples = {v: [t * 1e3 for t in r] for v, r in readings.items()}
    eager = statistics.median(samples["eager"])
    for variant, s in samples.items():
        ms = statistics.median(s)
        result["variants"][variant].update(ms=ms, speedup_vs_eager=eager / ms,
                                           tflops=result["gflop"] / ms)
    return result


def describe() -> dict:
    import torch

    from machine import describe as host

    return {**host(), "gpu": torch.cuda.get_device_name(), "cuda": torch.version.cuda}


def write(out: dict, directory: str) -> None:
    os.makedirs(directory, exist_ok=True)
    json.dump(out, open(os.path.join(directory, "gpu.json"), "w"), indent=1)
    m = out["machine"]
    names = list(dict.fromkeys(v for r in out["models"].values() for v in r.get("variants", {})))
    lines = [f"# End to end on the GPU, batch 1, fp32 — {m['gpu']}, {m['date']}", "",
             f"torch {m['torch']} (CUDA {m['cuda']}), tvm {m['tvm']}. Median latency in ms "
             "(speedup over eager); first-call wall time (compile, tuning) below.", "",
             "| model | GFLOP | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    first = ["", "| model | " + " | ".join(f"{n} first call (s)" for n in names) + " |",
             "|---|" + "---|" * len(names)]
    for model, r in out["models"].items():
        if "error" in r:
            lines.append(f"| {model} | failed: {r['error'][:120]} |")
            continue
        cells, firsts = [], []
        for n in names:
            v = r["variants"].get(n, {})
            cells.append(f"{v['ms']:.2f} (×{v['speedup_vs_eager']:.2f})" if "ms" in v
                         else v.get("error", v.get("skipped", "-"))[:60])
            firsts.append(f"{v['first_call_s']:.1f}" if "first_call_s" in v else "-")
        lines.append(f"| {model} | {r['gflop']:.2f} | " + " | ".join(cells) + " |")
        first.append(f"| {model} | " + " | ".join(firsts) + " |")
    with open(os.path.join(directory, "gpu.md"), "w") as f:
        f.write("\n".join(lines + first) + "\n")


def main():
    if sys.argv[1:2] == ["_one"]:
        cache_dir = sys.argv[5] or None
        print(json.dumps(one(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), cache_dir,
                             tuple(sys.argv[6:]))))
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["run"])
    parser.add_argument("--out", default=os.path.join(HERE, "results"))
    parser.add_argument("--deadline", type=float, default=1800, help="seconds for the whole run")
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--models", nargs="+", default=MODELS)
    parser.add_argument("--skip", nargs="*", default=[], help="variants not to run")
    parser.add_argument("--cache", default="", help="tvm_wm cache folder (default: none)")
    args = parser.parse_args()
    end = time.time() + args.deadline
    out = {"machine": describe(), "trials": args.trials, "models": {}}
    for name in args.models:
        left = end - time.time()
        if left < 30:
            out["models"][name] = {"error": "deadline"}
            continue
        print(f"{name} ({left:.0f} s left)", flush=True)
        # the tuned variant gets what is left of this model's share; timing needs ~30 s after it
        share = time.time() + left / (len(args.models) - list(args.models).index(name)) - 30
        try:
            proc = subprocess.run([sys.executable, __file__, "_one", name, str(args.trials), str(share),
                                   args.cache, *args.skip],
                                  capture_output=True, text=True, timeout=left)
            if proc.returncode == 0:
                out["models"][name] = json.loads(proc.stdout.strip().splitlines()[-1])
            else:
                out["models"][name] = {"error": proc.stderr[-1500:]}
        except subprocess.TimeoutExpired:
            out["models"][name] = {"error": "timed out"}
        print(json.dumps(out["models"][name])[:600], flush=True)
        write(out, args.out)


if __name__ == "__main__":
    main()
