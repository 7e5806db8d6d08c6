"""Cold vs warm start: time to a model's first output in a new process, tvm_wm beside Inductor.

    python benchmarks/cache.py [--models resnet50 mobilenet_v2] [--trials 0] [--tuned MODEL ...]
                                                # writes benchmarks/results/cache.{json,md}

Each run is a fresh Python process. "cold" starts from an empty cache directory, "warm" reuses the
directory the cold run filled. ``--tuned`` adds two starts on a copy of the cache `e2e.py tune` filled
(world model, 64 trials per task, e2e's options) for the models it names: the first start after
tuning, and the warm start after it. Reported: seconds from the start of the process to the first output (imports
included), from torch.compile to the first output, and what ran (graphs run as one TVM module / left
to Dynamo's graph / traced and compiled in that process).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
RESULTS = os.path.join(HERE, "results")
STATS = ("trials_measured", "cache_hits", "graphs_compiled", "graphs_one_module", "graphs_kept_eager")


def first_output(backend: str, name: str, options: dict) -> dict:
    t_process = time.perf_counter()
    import torch

    from eval_models import MODELS

    torch.manual_seed(0)
    build, make_input = MODELS[name]
    model, x = build().eval(), make_input()
    t_compile = time.perf_counter()
    if backend == "tvm_wm":
        import torch_wm_backend

        compiled = torch.compile(model, backend="tvm_wm", options=options)
    elif backend == "dynamo":  # Dynamo's tracing alone: the floor of any torch.compile backend
        compiled = torch.compile(model, backend="eager")
    else:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = options["cache_dir"]
        compiled = torch.compile(model)
    with torch.no_grad():
        compiled(x)
    done = time.perf_counter()
    stats = torch_wm_backend.stats() if backend == "tvm_wm" else {}
    return {"process_to_first_output_s": done - t_process, "compile_to_first_output_s": done - t_compile,
            **{k: stats.get(k) for k in STATS}}


def run(backend: str, name: str, options: dict) -> dict:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, "_run", backend, name, json.dumps(options)],
                          capture_output=True, text=True, env={**os.environ, "TVM_WM_CACHE_DIR": ""})
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["wall_s"] = time.perf_counter() - t0
    return result


def main():
    if sys.argv[1:2] == ["_run"]:
        print(json.dumps(first_output(sys.argv[2], sys.argv[3], json.loads(sys.argv[4]))))
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", nargs="+", default=["resnet50", "mobilenet_v2"])
    parser.add_argument("--trials", type=int, default=0)
    parser.add_argument("--tuned", nargs="*", default=[], metavar="MODEL",
                        help="for these models, a warm start from a copy of the cache `e2e.py tune` "
                             "filled (their tuning finished: otherwise the run tunes what is left)")
    args = parser.parse_args()
    from e2e import copy_cache
    from machine import describe

    out = {"machine": describe(), "trials": args.trials, "runs": {}}

    def record(key, result):
        out["runs"][key] = result
        print(key, {k: round(v, 2) if isinstance(v, float) else v for k, v in result.items()}, flush=True)

    for name in args.models:
        for backend in ("tvm_wm", "inductor"):
            cache_dir = tempfile.mkdtemp(prefix=f"cache_bench_{backend}_")
            for phase in ("cold", "warm"):
                record(f"{name}/{backend}/{phase}",
                       run(backend, name, {"trials": args.trials, "cache_dir": cache_dir}))
            shutil.rmtree(cache_dir, ignore_errors=True)
        if name in args.tuned:
            work = tempfile.mkdtemp(prefix="cache_bench_tuned_")
            options = copy_cache("tvm_wm_wm", 64, work)
            # the tuning run may have raced on a busy machine (then it did not store its choice):
            # the first start decides again, the next one is the warm start a deployment sees
            for phase in ("tuned, first start", "tuned, warm"):
                record(f"{name}/tvm_wm/{phase}", run("tvm_wm", name, options))
            shutil.rmtree(work, ignore_errors=True)
        record(f"{name}/dynamo (backend=\"eager\")", run("dynamo", name, {}))
    os.makedirs(RESULTS, exist_ok=True)
    json.dump(out, open(os.path.join(RESULTS, "cache.json"), "w"), indent=1)
    write_markdown(out)


def write_markdown(out: dict) -> None:
    m = out["machine"]
    lines = [f"# Cold vs warm start, batch 1 — {m['cpu']}, {m['cores']} cores, {m['date']}", "",
             f"Each run a new process; tvm_wm with trials={out['trials']} (\"tuned\": a copy of the "
             f"cache `e2e.py tune` filled, 64 trials per task with the world model); PyTorch on "
             f"{m.get('torch_threads')} threads, TVM on {m.get('tvm_threads')}. What ran: graphs run as "
             "one TVM module / graphs left to Dynamo's graph in PyTorch / graphs traced and compiled in "
             "that process (0: the cached choice was used without tracing). `dynamo (backend=\"eager\")`: "
             "Dynamo's tracing and nothing else, what any torch.compile backend pays before its first "
             "output.", "",
             "| model / backend / run | process start → first output (s) | compile → first output (s) "
             "| trials measured | cache hits | what ran |",
             "|---|---|---|---|---|---|"]

    def cell(v):
        return "-" if v is None else v

    for key, r in out["runs"].items():
        ran = "-" if r.get("graphs_compiled") is None else \
            f"{r['graphs_one_module']} TVM / {r['graphs_kept_eager']} Dynamo / {r['graphs_compiled']} compiled"
        lines.append(f"| {key} | {r['process_to_first_output_s']:.2f} | {r['compile_to_first_output_s']:.2f} | "
                     f"{cell(r.get('trials_measured'))} | {cell(r.get('cache_hits'))} | {ran} |")
    open(os.path.join(RESULTS, "cache.md"), "w").write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
