"""End-to-end batch-1 fp32 latency: eager, Inductor, tvm_wm untuned, tvm_wm tuned (xgb, wm).

    python benchmarks/e2e.py tune [--trials 64]   # background-able, resumable: tuning lives in
                                                  # benchmarks/work/e2e/<variant> caches
    python benchmarks/e2e.py time                 # on a quiet machine: all variants side by side
    python benchmarks/e2e.py time --compare v1 benchmarks/work/e2e_v1   # and each tuned variant
                                                  # built from other records (other weights'), beside

Writes benchmarks/results/e2e.json, e2e.md and e2e.png (--name: another name, --out: another folder).
"""
import argparse
import functools
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
WORK = os.path.join(HERE, "work", "e2e")
RESULTS = os.path.join(HERE, "results")
MODELS = ["mobilenet_v2", "resnet50", "bert_base"]
TUNED = {"tvm_wm_xgb": "xgb", "tvm_wm_wm": "wm", "tvm_wm_wm_nhwc": "wm", "tvm_wm_wm_packed": "wm",
         "tvm_wm_wm_torchmm": "wm"}  # variant: cost model
# *_nhwc: layout="NHWC"; *_packed: weight_layouts=True (tuning chooses the weights' layouts);
# *_torchmm: matmul="pytorch" (PyTorch's matrix products inside the module, the rest tuned)


def options(variant: str, trials: int, work: str = WORK) -> dict:
    layout = "NHWC" if variant.endswith("_nhwc") else "NCHW"  # named, not the default ("auto")
    if variant == "tvm_wm_untuned":
        return {"trials": 0, "cache_dir": os.path.join(work, variant), "layout": layout,
                "matmul": "auto"}
    return {"trials": trials, "cost_model": TUNED[variant], "time_budget_s": None,
            "cache_dir": os.path.join(work, f"{variant}_t{trials}"), "layout": layout,
            # TVM's products or PyTorch's, whichever module is faster, unless the variant names them
            "matmul": "pytorch" if variant.endswith("_torchmm") else "auto",
            "weight_layouts": variant.endswith("_packed")}


def timed_options(variant: str, args, work: str) -> dict:
    """``variant``'s options for `time`: its cache under ``work``, its matrix products as
    ``--matmul`` names (the records are shared; the built module is keyed by the option)."""
    opts = options(variant, args.trials, work)
    if args.matmul and variant != "tvm_wm_untuned":
        opts["matmul"] = args.matmul
    return opts


def copy_cache(variant: str, trials: int, work: str) -> dict:
    """``variant``'s options on a copy of its cache under ``work``: `tune` holds the original's
    records lock for its whole run. Lock files and scratch space are left out."""
    import shutil

    copied = options(variant, trials, work)
    shutil.copytree(options(variant, trials)["cache_dir"], copied["cache_dir"],
                    ignore=shutil.ignore_patterns("*.lock", "tmp"), dirs_exist_ok=True)
    return copied


def _load(name):
    import torch
    from eval_models import MODELS as ZOO

    torch.manual_seed(0)
    build, make_input = ZOO[name]
    return build().eval(), make_input()


def tune_one(name: str, variant: str, trials: int) -> dict:
    """In this process: compile (tuning into the variant's cache) and report wall time + stats."""
    import torch

    import torch_wm_backend

    model, x = _load(name)
    start = time.perf_counter()
    with torch.no_grad():
        torch.compile(model, backend="tvm_wm", options=options(variant, trials))(x)
    return {"tune_s": time.perf_counter() - start, "stats": torch_wm_backend.stats()}


def cmd_tune(args):
    path = os.path.join(args.out, f"e2e_tuning_t{args.trials}.json")
    done = json.load(open(path)) if os.path.exists(path) else {}
    # by default untuned first (minutes), then the world model on every model, then XGB: a run cut
    # short has the project's own variant on every model first
    order = [(m, v) for v in args.variants for m in args.models]
    jobs = [(m, v) for m, v in order if f"{m}/{v}" not in done]
    for i, (name, variant) in enumerate(jobs):
        print(f"[{i + 1}/{len(jobs)}] tuning {name} {variant} ({args.trials} trials/task)", flush=True)
        # the child's stderr (progress bar, tuning table, warnings) goes to ours; its stdout is the result
        proc = subprocess.run([sys.executable, __file__, "_tune_one", name, variant, str(args.trials)],
                              stdout=subprocess.PIPE, text=True)
        if proc.returncode != 0:
            print(f"    failed (exit {proc.returncode}); see the log above", flush=True)
            continue
        done[f"{name}/{variant}"] = json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"    {done[f'{name}/{variant}']['tune_s']:.0f} s", flush=True)
        os.makedirs(args.out, exist_ok=True)
        json.dump(done, open(path, "w"), indent=1)


def cmd_time(args):
    import statistics

    import torch
    import torch._inductor.config
    from torch.utils.flop_counter import FlopCounterMode

    import torch_wm_backend
    from machine import describe, interleaved

    out = {"machine": describe(), "trials": args.trials, "rounds": args.rounds, "iters": args.iters,
           "models": {}}
    if args.matmul:
        out["matmul"] = args.matmul
    if args.compare:
        out["compare"] = {"label": args.compare[0], "work": os.path.relpath(args.compare[1], HERE),
                          "note": args.compare_note}
    tuning_path = os.path.join(args.out, f"e2e_tuning_t{args.trials}.json")
    for name in args.models:
        model, x = _load(name)
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(x)
        flops = counter.get_total_flops()
        fns = {"eager": model}
        tuned = json.load(open(tuning_path)) if os.path.exists(tuning_path) else {}
        with torch.no_grad():
            fns["inductor"] = torch.compile(model)
            # Inductor's own frozen-weights mode (torch._inductor.config.freezing). The option
            # alone does not freeze (measured 2026-12-06, MobileNetV2: x1.84 of eager with and
            # without it, x2.56 with the config set); it keeps Dynamo from reusing the graph
            # compiled above, and the config is set while it compiles (its first calls, below)
            fns["inductor_freezing"] = torch.compile(model, options={"freezing": True})
            for variant in ["tvm_wm_untuned", *TUNED]:
                if f"{name}/{variant}" not in tuned or variant in args.skip:
                    continue  # not tuned yet: timing it here would tune it now
                fns[variant] = torch.compile(model, backend="tvm_wm",
                                             options=timed_options(variant, args, args.work))
                if args.compare and variant in TUNED:  # the same variant from other records
                    other = timed_options(variant, args, args.compare[1])
                    if not os.path.isdir(other["cache_dir"]):  # compiling it would tune it anew
                        print(f"{name}/{variant}: no cache at {other['cache_dir']}; "
                              f"{args.compare[0]} not timed", flush=True)
                        continue
                    fns[f"{variant}_{args.compare[0]}"] = torch.compile(model, backend="tvm_wm",
                                                                        options=other)
            kept = {}
            for variant, fn in fns.items():
                torch_wm_backend.reset_stats()
                freezing = torch._inductor.config.patch(freezing=variant == "inductor_freezing")
                with freezing:
                    for _ in range(3):  # compile (warm cache; the guard decides in context), warm up
                        fn(x)
                if variant.startswith("tvm_wm"):
                    s = torch_wm_backend.stats()
                    kept[variant] = {k: s[k] for k in ("subgraphs_compiled", "trials_measured",
                                                       "context_kept_tvm",
                                                       "context_kept_eager", "graphs_kept_compiled",
                                                       "graphs_kept_eager", "graphs_one_module",
                                                       "modules_pytorch_products",
                                                       "weights_prepared", "prepared_weight_bytes")}
                    torch_wm_backend.reset_stats()
                    fn(x)  # what one call runs: TVM kernels (a VM call each), not the race's fallback
                    kept[variant]["kernel_calls_per_call"] = torch_wm_backend.stats()["kernel_calls"]
        with torch.no_grad():  # each reading one call, after one untimed call (machine.timed)
            readings = interleaved({v: functools.partial(fn, x) for v, fn in fns.items()},
                                   rounds=args.rounds, samples=args.iters)
        samples = {v: [t * 1e3 for t in r] for v, r in readings.items()}
        eager = statistics.median(samples["eager"])
        rows = {}
        for variant, s in samples.items():
            ms = statistics.median(s)
            rows[variant] = {"ms": ms, "p10_ms": sorted(s)[len(s) // 10],
                             "speedup_vs_eager": eager / ms, "gflops": flops / ms / 1e6,
                             **({"subgraphs": kept[variant]} if variant in kept else {})}
        out["models"][name] = {"gflop": flops / 1e9, "variants": rows}
        print(name, {v: round(r["ms"], 2) for v, r in rows.items()}, flush=True)
        torch._dynamo.reset()
    out["tuning"] = json.load(open(tuning_path)) if os.path.exists(tuning_path) else {}
    os.makedirs(args.out, exist_ok=True)
    json.dump(out, open(os.path.join(args.out, f"{args.name}.json"), "w"), indent=1)
    write_markdown(out, args.out, args.name)


def write_markdown(out, folder=RESULTS, stem="e2e"):
    import math

    from machine import heading

    variants = list(dict.fromkeys(v for r in out["models"].values() for v in r["variants"]))
    m = out["machine"]
    lines = heading("End to end, batch 1, fp32", m)
    lines[-1] += (f" Tuned variants: {out['trials']} trials per task, pooled over the graph's tasks "
                  "(tune/tuner.py). "
                  f"Median latency in ms of {out.get('rounds', '?')} interleaved rounds, each variant "
                  f"{out.get('iters', '?')} timed calls per round after one untimed call "
                  "(speedup over eager, GFLOP/s). inductor_freezing: Inductor with "
                  "`torch._inductor.config.freezing` (its frozen-weights mode)."
                  + (" *_nhwc: the `layout=\"NHWC\"` option (convolutions channels-last inside TVM)."
                     if any(v.endswith("_nhwc") for v in variants) else "")
                  + (" *_packed: the `weight_layouts` option (tuning chooses the frozen weights' "
                     "layouts, prepared once)." if any(v.endswith("_packed") for v in variants) else "")
                  + (" *_torchmm: the `matmul=\"pytorch\"` option (PyTorch's matrix products called "
                     "from inside the TVM module, its other kernels tuned)."
                     if any(v.endswith("_torchmm") for v in variants) else "")
                  + (f" Every tuned variant built with `matmul=\"{out['matmul']}\"`."
                     if out.get("matmul") else "")
                  + (f" *_{out['compare']['label']}: the same variant built from the tuning records "
                     f"under `benchmarks/{out['compare']['work']}` ({out['compare']['note']})."
                     if out.get("compare") else ""))
    lines += ["", "| model | GFLOP | " + " | ".join(variants) + " |", "|---|---|" + "---|" * len(variants)]
    for name, r in out["models"].items():
        cells = [f"{r['variants'][v]['ms']:.2f} (×{r['variants'][v]['speedup_vs_eager']:.2f}, "
                 f"{r['variants'][v]['gflops']:.0f})" if v in r["variants"] else "-" for v in variants]
        lines.append(f"| {name} | {r['gflop']:.2f} | " + " | ".join(cells) + " |")
    def geomean(v):
        ups = [r["variants"][v]["speedup_vs_eager"] for r in out["models"].values() if v in r["variants"]]
        return f"×{math.exp(sum(map(math.log, ups)) / len(ups)):.2f} ({len(ups)} models)"

    lines.append("| geomean speedup | | " + " | ".join(geomean(v) for v in variants) + " |")
    lines += ["", "What each tvm_wm variant runs after the selection (select/) raced it against Dynamo's "
              "graph in PyTorch: *one module* — the whole graph in one TVM module, weights frozen; "
              "*partitioned* — the subgraphs kept in TVM, the rest in PyTorch; *eager* — Dynamo's graph "
              "in PyTorch, no TVM kernel runs; *PyTorch's matrix products* — the module calls "
              "PyTorch's products (the `matmul` option: oneDNN on packed weights, `torch.matmul` for "
              "the others), its other kernels TVM's. "
              "TVM calls: TVM kernel (VM) calls in one model call.", "",
              "| model / variant | subgraphs compiled | kept in TVM | graph run | TVM calls per call | "
              "trials measured while compiling here |",
              "|---|---|---|---|---|---|"]
    for name, r in out["models"].items():
        for v, row in r["variants"].items():
            if "subgraphs" in row:
                k = row["subgraphs"]
                run = (("one module, PyTorch's matrix products" if k.get("modules_pytorch_products")
                        else "one module") if k.get("graphs_one_module") else
                       "partitioned" if k.get("graphs_kept_compiled") else
                       "eager" if k.get("graphs_kept_eager") else "-")
                lines.append(f"| {name}/{v} | {k['subgraphs_compiled']} | {k['context_kept_tvm']} | "
                             f"{run} | {k.get('kernel_calls_per_call', '-')} | "
                             f"{k.get('trials_measured', '-')} |")
    if out["tuning"]:
        lines += ["", "Tuning runs:", "",
                  "| model / variant | tuning + compile wall time (s) | tasks | trials |",
                  "|---|---|---|---|"]
        for key, t in out["tuning"].items():
            s = t["stats"]
            lines.append(f"| {key} | {t['tune_s']:.0f} | {s['tasks_tuned']} | {s['trials_measured']} |")
    from plots import speedup_bars

    speedup_bars(os.path.join(folder, f"{stem}.png"),
                 {name: {v: row["speedup_vs_eager"] for v, row in r["variants"].items() if v != "eager"}
                  for name, r in out["models"].items()},
                 f"end to end, batch 1, {m['cores']} cores, {m['date'][:10]}")
    lines += ["", f"![speedup over eager]({stem}.png)"]
    with open(os.path.join(folder, f"{stem}.md"), "w") as f:
        f.write("\n".join(lines) + "\n")


def main():
    if sys.argv[1:2] == ["_tune_one"]:
        name, variant, trials = sys.argv[2], sys.argv[3], int(sys.argv[4])
        print(json.dumps(tune_one(name, variant, trials)))
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["tune", "time"])
    parser.add_argument("--trials", type=int, default=64)
    # fine interleaving: bursts of load from other tenants last seconds here, and a long block of
    # one variant's calls could fall inside one (a 10-call block once made PyTorch's own graph
    # look 30% faster than eager)
    parser.add_argument("--rounds", type=int, default=25)
    parser.add_argument("--iters", type=int, default=2)
    parser.add_argument("--models", nargs="+", default=MODELS, choices=MODELS)
    parser.add_argument("--skip", nargs="*", default=[], help="variants not to time")
    parser.add_argument("--out", default=RESULTS, help="where `tune` keeps its e2e_tuning_t<trials>.json "
                        "(which `time` reads) and `time` writes <name>.json/.md/.png")
    parser.add_argument("--name", default="e2e", help="`time` writes <name>.json/.md/.png")
    parser.add_argument("--work", default=WORK, help="the variants' caches `time` reads (a copy "
                        "of them while `tune` holds their records lock)")
    parser.add_argument("--compare", nargs=2, metavar=("LABEL", "WORK"), help="`time` also times "
                        "each tuned variant built from the caches under WORK (tuned with other "
                        "weights, say) as <variant>_<LABEL>, interleaved with the rest")
    parser.add_argument("--matmul", choices=["tvm", "pytorch", "auto"], help="`time` builds every "
                        "tuned variant with this `matmul` option instead of its own (from the same "
                        "records)")
    parser.add_argument("--compare-note", default="", help="what --compare's caches are, for the "
                        "markdown")
    parser.add_argument("--variants", nargs="+", default=["tvm_wm_untuned", "tvm_wm_wm", "tvm_wm_xgb"],
                        choices=["tvm_wm_untuned", *TUNED], help="variants to tune, in this order")
    args = parser.parse_args()
    cmd_tune(args) if args.command == "tune" else cmd_time(args)


if __name__ == "__main__":
    main()
