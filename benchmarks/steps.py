"""What each step buys, on one ResNet-50 bottleneck (256 -> 64 -> 256 at 56x56, batch 1, fp32):

    python benchmarks/steps.py [--trials 16]      # writes results/steps.{json,md}

Each TVM configuration runs in a process of its own (TVM sizes its thread pool once), timed in
interleaved rounds against eager PyTorch and Inductor in that process; the table compares ratios
to eager. Rows:
  - partitioned: one TVM kernel per anchor op, weights as graph inputs, every kernel in TVM
    (``eager_guard=False``) — at TVM's thread count before threads.py (1 on this 2-core machine)
    and at PyTorch's;
  - one module, frozen weights: the whole graph as one Relax module with the weights lifted (batch
    norm folded into the convolutions' kernels), forced to run by a timer that lets it win;
  - the same with ``layout="NHWC"``: its convolutions channels-last inside TVM;
  - each untuned (trials 0: default schedules, parallel) and tuned (``--trials`` per task, the
    world model).
The default schedule's own gain is timed on the bottleneck's 3x3 convolution alone: the loop nest
as written (TVM's plain build, unfused, one thread) against build/cpu_default.py.
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
WORK = os.path.join(HERE, "work", "steps")
RESULTS = os.path.join(HERE, "results")


def model_and_input():
    import torch
    from eval_models import Bottleneck

    torch.manual_seed(0)
    return Bottleneck(256, 64, 1).eval(), torch.randn(1, 256, 56, 56)


class LetItWin:
    """A timer under which every candidate wins: the selection keeps its first candidate (the
    whole graph as one module, where there is one)."""

    def compare(self, candidate, reference, device):
        from torch_wm_backend.select import Timing

        candidate()
        return Timing(0.0, 1.0)

    def in_place(self, run, subgraphs, modes, rounds):
        return [{s.name: 0.0 for s in subgraphs}, {s.name: 1.0 for s in subgraphs}]


def run_config(layout: str, trials: int) -> dict:
    """In this process: compile one TVM configuration, time it beside eager and Inductor."""
    import torch
    from machine import interleaved, median

    import torch_wm_backend
    from torch_wm_backend import threads
    from torch_wm_backend.backend import tvm_wm

    model, x = model_and_input()
    cache = os.path.join(WORK, f"t{trials}_threads{threads.count()}")
    options = {"trials": trials, "cost_model": "wm", "cache_dir": cache, "time_budget_s": None,
               "layout": "NHWC" if layout == "whole_nhwc" else "NCHW"}
    if layout == "partitioned":
        tvm = torch.compile(model, backend="tvm_wm", options={**options, "eager_guard": False})
    else:
        tvm = torch.compile(model, backend=functools.partial(tvm_wm, timer=LetItWin()), options=options)
    fns = {"eager": model, "inductor": torch.compile(model), "tvm": tvm}
    start = time.perf_counter()
    with torch.no_grad():
        for fn in fns.values():
            fn(x)
            torch.testing.assert_close(fn(x), model(x), atol=1e-3, rtol=1e-3)
    compile_s = time.perf_counter() - start
    stats = torch_wm_backend.stats()
    with torch.no_grad():
        med = median(interleaved({k: functools.partial(fn, x) for k, fn in fns.items()}, rounds=10,
                                 samples=2, calls=3, warmup=3), 1e3)
    return {"ms": med, "compile_s": compile_s, "tvm_threads": threads.count(),
            "torch_threads": torch.get_num_threads(),
            "stats": {k: stats[k] for k in ("subgraphs_compiled", "kernel_calls", "trials_measured",
                                             "weights_prepared", "graphs_kept_compiled")}}


def default_schedule_gain() -> dict:
    """The 3x3 convolution alone: TVM's plain build (unfused, no schedule) against ours."""
    import torch
    import tvm
    from machine import interleaved, median
    from torch.fx.experimental.proxy_tensor import make_fx

    from torch_wm_backend import threads
    from torch_wm_backend.build import build
    from torch_wm_backend.lower import to_relax
    from torch_wm_backend.lower.target import cpu_target
    from torch_wm_backend.runtime import Kernel

    threads.sync()
    torch.manual_seed(0)
    args = [torch.randn(1, 64, 56, 56), torch.randn(64, 64, 3, 3), torch.randn(64)]

    def f(x, w, b):
        return torch.relu(torch.ops.aten.convolution(x, w, b, [1, 1], [1, 1], [1, 1], False, [0, 0], 1))

    mod = to_relax(make_fx(f)(*args), args)
    plain = Kernel(tvm.compile(mod, target=cpu_target()), torch.device("cpu"))
    ours = Kernel(build(mod, cpu_target()), torch.device("cpu"))
    fns = {"plain (unfused, one thread)": lambda a: plain(a), "default schedule": lambda a: ours(a),
           "pytorch": lambda a: f(*a)}
    with torch.no_grad():
        return median(interleaved({k: functools.partial(fn, args) for k, fn in fns.items()}, rounds=5,
                                  samples=2, calls=2, warmup=2), 1e3)


CONFIGS = [("partitioned", "1"), ("partitioned", None), ("whole", None), ("whole_nhwc", None)]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("_child", nargs="*")
    args = parser.parse_args()
    if args._child:
        if args._child[0] == "default":
            print(json.dumps(default_schedule_gain()))
        else:
            print(json.dumps(run_config(args._child[0], int(args._child[1]))))
        return
    from machine import describe

    out = {"machine": describe(), "trials": args.trials, "rows": []}
    for trials in (0, args.trials):
        for layout, tvm_threads in CONFIGS:
            env = dict(os.environ)
            env.pop("TVM_NUM_THREADS", None)
            if tvm_threads:
                env["TVM_NUM_THREADS"] = tvm_threads
            proc = subprocess.run([sys.executable, __file__, layout, str(trials)], env=env,
                                  stdout=subprocess.PIPE, text=True)
            if proc.returncode != 0:
                print(f"{layout} trials={trials} threads={tvm_threads}: failed", flush=True)
                continue
            row = {"layout": layout, "trials": trials, **json.loads(proc.stdout.strip().splitlines()[-1])}
            out["rows"].append(row)
            print(layout, trials, row["tvm_threads"], {k: round(v, 2) for k, v in row["ms"].items()},
                  flush=True)
    proc = subprocess.run([sys.executable, __file__, "default", "0"], stdout=subprocess.PIPE, text=True)
    out["default_schedule_conv3x3_ms"] = json.loads(proc.stdout.strip().splitlines()[-1])
    os.makedirs(RESULTS, exist_ok=True)
    json.dump(out, open(os.path.join(RESULTS, "steps.json"), "w"), indent=1)
    write_markdown(out)


def write_markdown(out):
    from machine import heading

    m = out["machine"]
    lines = heading("What each step buys — ResNet-50 bottleneck (256→64→256, 56×56), batch 1, fp32", m)
    lines[-1] += (" The TVM threads column gives each row's own count. Median ms per call; each row "
                  "is one process, timed in interleaved rounds beside eager and Inductor (×: eager's "
                  "time / this one's).")
    lines += ["", "| TVM configuration | trials/task | TVM threads | TVM ms | eager ms | Inductor ms | "
             "TVM ×eager | Inductor ×eager | kernels run per call |", "|---|---|---|---|---|---|---|---|---|"]
    names = {"partitioned": "partitioned, weights as inputs", "whole": "one module, frozen weights",
             "whole_nhwc": "one module, frozen weights, NHWC"}
    for r in out["rows"]:
        ms = r["ms"]
        lines.append(f"| {names[r['layout']]} | {r['trials']} | {r['tvm_threads']} | {ms['tvm']:.2f} | "
                     f"{ms['eager']:.2f} | {ms['inductor']:.2f} | ×{ms['eager'] / ms['tvm']:.2f} | "
                     f"×{ms['eager'] / ms['inductor']:.2f} | "
                     f"{'1' if r['layout'].startswith('whole') else r['stats']['subgraphs_compiled']} |")
    d = out["default_schedule_conv3x3_ms"]
    lines += ["", "Default schedule, the 3×3 convolution (64→64, 56×56) + bias + ReLU alone, untuned, "
              f"TVM at {m['tvm_threads']} threads, ms: " + ", ".join(f"{k} {v:.2f}" for k, v in d.items())]
    with open(os.path.join(RESULTS, "steps.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
