"""Cold vs warm start: time to the first output of ResNet-50 in a new process, tvm_wm beside Inductor.

    python benchmarks/cache.py [--trials 0]     # writes benchmarks/results/cache.{json,md}

Each run is a fresh Python process. "cold" starts from an empty cache directory, "warm" reuses the
directory the cold run filled. Reported: seconds from the start of the process to the first output
(imports included), and from torch.compile to the first output.
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


def first_output(backend: str, cache_dir: str, trials: int) -> dict:
    t_process = time.perf_counter()
    import torch

    from eval_models import image, resnet50

    torch.manual_seed(0)
    model, x = resnet50().eval(), image()
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
            "trials_measured": stats.get("trials_measured"), "cache_hits": stats.get("cache_hits")}


def main():
    if sys.argv[1:2] == ["_run"]:
        print(json.dumps(first_output(sys.argv[2], sys.argv[3], int(sys.argv[4]))))
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=0)
    args = parser.parse_args()
    from machine import describe

    out = {"machine": describe(), "trials": args.trials, "runs": {}}
    for backend in ("tvm_wm", "inductor"):
        cache_dir = tempfile.mkdtemp(prefix=f"cache_bench_{backend}_")
        for phase in ("cold", "warm"):
            t0 = time.perf_counter()
            proc = subprocess.run([sys.executable, __file__, "_run", backend, cache_dir, str(args.trials)],
                                  capture_output=True, text=True, env={**os.environ, "TVM_WM_CACHE_DIR": ""})
            assert proc.returncode == 0, proc.stderr[-3000:]
            run = json.loads(proc.stdout.strip().splitlines()[-1])
            run["wall_s"] = time.perf_counter() - t0
            out["runs"][f"{backend}/{phase}"] = run
            print(backend, phase, {k: round(v, 2) if isinstance(v, float) else v for k, v in run.items()},
                  flush=True)
        shutil.rmtree(cache_dir, ignore_errors=True)
    os.makedirs(RESULTS, exist_ok=True)
    json.dump(out, open(os.path.join(RESULTS, "cache.json"), "w"), indent=1)
    m = out["machine"]
    lines = [f"# Cold vs warm start, ResNet-50 batch 1 — {m['cpu']}, {m['cores']} cores, {m['date']}", "",
             f"tvm_wm with trials={out['trials']}; each run a new process.", "",
             "| backend / run | process start → first output (s) | compile → first output (s) | trials measured | cache hits |",
             "|---|---|---|---|---|"]
    for key, r in out["runs"].items():
        lines.append(f"| {key} | {r['process_to_first_output_s']:.2f} | {r['compile_to_first_output_s']:.2f} | "
                     f"{r['trials_measured'] if r['trials_measured'] is not None else '-'} | "
                     f"{r['cache_hits'] if r['cache_hits'] is not None else '-'} |")
    open(os.path.join(RESULTS, "cache.md"), "w").write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
