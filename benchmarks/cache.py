"""Cold vs warm start: time to the first output of a model in a new process, tvm_wm beside Inductor.

    python benchmarks/cache.py [--model resnet50] [--trials 0] [--tuned-cache DIR]
                                                # writes benchmarks/results/cache.{json,md}

Each run is a fresh Python process. "cold" starts from an empty cache directory, "warm" reuses the
directory the cold run filled. ``--tuned-cache`` adds "warm, tuned": a copy of a cache a tuning run
filled (e.g. benchmarks/work/e2e/tvm_wm_wm_t64), where the model's TVM module won its race.
Reported: seconds from the start of the process to the first output (imports included), from
torch.compile to the first output, and what ran (graphs run as one TVM module / left to
Dynamo's graph / traced and compiled in that process).
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


def first_output(backend: str, cache_dir: str, trials: int, name: str) -> dict:
    t_process = time.perf_counter()
    import torch

    from eval_models import MODELS

    torch.manual_seed(0)
    build, make_input = MODELS[name]
    model, x = build().eval(), make_input()
    t_compile = time.perf_counter()
    if backend == "tvm_wm":
        import torch_wm_backend

        compiled = torch.compile(model, backend="tvm_wm",
                                 options={"trials": trials, "cache_dir": cache_dir})
    else:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache_dir
        compiled = torch.compile(model)
    with torch.no_grad():
        compiled(x)
    done = time.perf_counter()
    stats = torch_wm_backend.stats() if backend == "tvm_wm" else {}
    return {"process_to_first_output_s": done - t_process, "compile_to_first_output_s": done - t_compile,
            **{k: stats.get(k) for k in ("trials_measured", "cache_hits", "graphs_compiled",
                                         "graphs_one_module", "graphs_kept_eager")}}


def main():
    if sys.argv[1:2] == ["_run"]:
        print(json.dumps(first_output(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5])))
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--trials", type=int, default=0)
    parser.add_argument("--tuned-cache", help="a cache a tuning run filled: adds a warm start from a copy")
    args = parser.parse_args()
    from machine import describe

    out = {"machine": describe(), "model": args.model, "trials": args.trials, "runs": {}}

    def run(key, backend, cache_dir, trials):
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, __file__, "_run", backend, cache_dir, str(trials), args.model],
                              capture_output=True, text=True, env={**os.environ, "TVM_WM_CACHE_DIR": ""})
        assert proc.returncode == 0, proc.stderr[-3000:]
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        result["wall_s"] = time.perf_counter() - t0
        out["runs"][key] = result
        print(key, {k: round(v, 2) if isinstance(v, float) else v for k, v in result.items()}, flush=True)

    for backend in ("tvm_wm", "inductor"):
        cache_dir = tempfile.mkdtemp(prefix=f"cache_bench_{backend}_")
        for phase in ("cold", "warm"):
            run(f"{backend}/{phase}", backend, cache_dir, args.trials)
        shutil.rmtree(cache_dir, ignore_errors=True)
    if args.tuned_cache:
        copy = os.path.join(tempfile.mkdtemp(prefix="cache_bench_tuned_"), "cache")
        shutil.copytree(args.tuned_cache, copy, ignore=shutil.ignore_patterns("*.lock", "tmp"))
        run("tvm_wm/warm, tuned cache", "tvm_wm", copy, 64)
        shutil.rmtree(os.path.dirname(copy), ignore_errors=True)
    os.makedirs(RESULTS, exist_ok=True)
    json.dump(out, open(os.path.join(RESULTS, "cache.json"), "w"), indent=1)
    m = out["machine"]
    lines = [f"# Cold vs warm start, {out['model']} batch 1 — {m['cpu']}, {m['cores']} cores, {m['date']}", "",
             f"tvm_wm with trials={out['trials']}; each run a new process; PyTorch on "
             f"{m.get('torch_threads')} threads, TVM on {m.get('tvm_threads')}. \"what ran\": graphs run as "
             "one TVM module / graphs left to Dynamo's graph in PyTorch / graphs traced and compiled in "
             "that process (0: the cached choice was used without tracing).", "",
             "| backend / run | process start → first output (s) | compile → first output (s) | trials measured | cache hits | what ran |",
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
