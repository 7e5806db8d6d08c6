"""TVM's thread pool beside PyTorch's OpenMP threads: what a TVM kernel followed by a PyTorch op costs,
and what a whole TVM module costs, with TVM's workers bound to cores (its default) or not
(``TVM_BIND_THREADS=0``), and with its idle workers spinning (its default) or asleep
(``TVM_THREAD_POOL_SPIN_COUNT=0``); torch_wm_backend sets both to 0 unless the user set them.

    python benchmarks/threads_mix.py [--rounds 3] [--model mobilenet_v2 --variant tvm_wm_wm --trials 64]
        [--name threads_mix]                          # writes results/<name>.{json,md}

TVM reads both when it makes its pool, so every setting runs in processes of its own, the two
settings alternating. In each process:
  - mix: a parallel TVM kernel (1M-element multiply-add) and a depthwise 3×3 convolution in
    PyTorch (32 channels, 56×56), timed alone and alternating (µs per pair);
  - a model (batch 1; MobileNetV2 unless told), the whole graph as one tuned TVM module, warm from
    a copy of the cache `e2e.py tune` filled for the variant (world model, 64 trials per task
    unless told), against eager in interleaved rounds; the module runs whatever its race would say
    (a first process stores it as the choice).
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
RESULTS = os.path.join(HERE, "results")
WORK = os.path.join(HERE, "work", "threads_mix")
# TVM's defaults: workers spin 300000 rounds (thread_pool.cc's kDefaultSpinCount), bound to cores
SETTINGS = {"spin, bound (TVM's default)": {"TVM_THREAD_POOL_SPIN_COUNT": "300000", "TVM_BIND_THREADS": "1"},
            "spin, not bound": {"TVM_THREAD_POOL_SPIN_COUNT": "300000", "TVM_BIND_THREADS": "0"},
            "no spin, bound": {"TVM_THREAD_POOL_SPIN_COUNT": "0", "TVM_BIND_THREADS": "1"},
            "no spin, not bound (torch_wm_backend's)": {"TVM_THREAD_POOL_SPIN_COUNT": "0",
                                                         "TVM_BIND_THREADS": "0"}}


def _per_call_us(fn, calls=200, repeats=5) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - start) / calls)
    return best * 1e6


def mix() -> dict:
    import torch
    import tvm
    from tvm import te

    n = 1 << 20
    a = te.placeholder((n,), name="a")
    b = te.compute((n,), lambda i: a[i] * 2.0 + 1.0, name="b")
    sch = tvm.s_tir.Schedule(te.create_prim_func([a, b]))
    (loop,) = sch.get_loops(sch.get_sblock("b"))
    outer, inner = sch.split(loop, [None, 4096])
    sch.parallel(outer)
    sch.vectorize(inner)
    kernel = tvm.compile(sch.mod, target="llvm")
    x, y = torch.randn(n), torch.empty(n)
    xa, ya = tvm.runtime.from_dlpack(x), tvm.runtime.from_dlpack(y)
    img, weight = torch.randn(1, 32, 56, 56), torch.randn(32, 1, 3, 3)

    def conv():
        torch.conv2d(img, weight, padding=1, groups=32)

    def tvm_kernel():
        kernel(xa, ya)

    def both():
        tvm_kernel()
        conv()

    for _ in range(20):
        both()
    return {"tvm_us": _per_call_us(tvm_kernel), "torch_us": _per_call_us(conv), "pair_us": _per_call_us(both)}


def one_module(cache_dir: str, model_name: str, variant: str, trials: int, prepare: bool = False) -> dict:
    import functools

    import torch

    import torch_wm_backend
    from e2e import _load, _median_ms, options
    from steps import LetItWin
    from torch_wm_backend.backend import tvm_wm

    model, x = _load(model_name)
    opts = {**options(variant, trials), "cache_dir": cache_dir}
    # the first process stores the one module as the choice (a timer that lets it win), so every
    # timed process starts warm and runs it, whatever its race would say
    backend = functools.partial(tvm_wm, timer=LetItWin()) if prepare else "tvm_wm"
    compiled = torch.compile(model, backend=backend, options=opts)
    with torch.no_grad():
        compiled(x)
        eager, tvm_ms = [], []
        for _ in range(10):  # interleaved rounds
            eager.append(statistics.median(_median_ms(model, x, 10)))
            tvm_ms.append(statistics.median(_median_ms(compiled, x, 10)))
    stats = torch_wm_backend.stats()
    return {"eager_ms": statistics.median(eager), "tvm_wm_ms": statistics.median(tvm_ms),
            "graphs_one_module": stats["graphs_one_module"], "graphs_compiled": stats["graphs_compiled"],
            "modules_pytorch_products": stats["modules_pytorch_products"]}


def child(cache_dir: str, prepare: bool, model: str, variant: str, trials: int) -> dict:
    from torch_wm_backend import threads

    threads.sync()  # the backend's settings, before the first TVM kernel of this process
    return {"spin_count": os.environ.get("TVM_THREAD_POOL_SPIN_COUNT"),
            "bind_threads": os.environ.get("TVM_BIND_THREADS"), "tvm_threads": threads.count(),
            "mix": mix(), "model": one_module(cache_dir, model, variant, trials, prepare)}


def run_child(setting: dict, cache_dir: str, args, prepare: bool = False) -> dict:
    env = {**os.environ, **setting}  # set explicitly: the backend leaves what the user set alone
    proc = subprocess.run([sys.executable, __file__, "_child", cache_dir, str(int(prepare)),
                           args.model, args.variant, str(args.trials)],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def prepare_cache(variant: str, trials: int) -> str:
    """A fresh copy of e2e's tuned cache (the first process stores the model's choice in it)."""
    from e2e import copy_cache

    shutil.rmtree(WORK, ignore_errors=True)
    return copy_cache(variant, trials, WORK)["cache_dir"]


def main():
    if sys.argv[1:2] == ["_child"]:
        print(json.dumps(child(sys.argv[2], sys.argv[3] == "1", sys.argv[4], sys.argv[5],
                               int(sys.argv[6]))))
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--model", default="mobilenet_v2")
    parser.add_argument("--variant", default="tvm_wm_wm", help="e2e.py's variant whose cache to copy")
    parser.add_argument("--trials", type=int, default=64)
    parser.add_argument("--name", default="threads_mix")
    args = parser.parse_args()
    from machine import describe

    cache = prepare_cache(args.variant, args.trials)
    run_child(next(iter(SETTINGS.values())), cache, args, prepare=True)
    out = {"machine": describe(), "model": args.model, "variant": args.variant, "trials": args.trials,
           "runs": {name: [] for name in SETTINGS}}
    for _ in range(args.rounds):
        for name, setting in SETTINGS.items():
            result = run_child(setting, cache, args)
            out["runs"][name].append(result)
            print(name, json.dumps(result), flush=True)
    os.makedirs(RESULTS, exist_ok=True)
    json.dump(out, open(os.path.join(RESULTS, f"{args.name}.json"), "w"), indent=1)
    write_markdown(out, args.name)


def write_markdown(out: dict, stem: str = "threads_mix") -> None:
    m = out["machine"]
    model = out.get("model", "mobilenet_v2")
    lines = [f"# TVM's idle workers beside PyTorch — {m['cpu']}, {m['cores']} cores, {m['date']}", "",
             f"torch {m.get('torch')}, tvm {m.get('tvm')}; PyTorch on {m.get('torch_threads')} threads, TVM on "
             f"{m.get('tvm_threads')}. One process per row, the settings alternating; medians over "
             "the processes of a setting. mix: a parallel TVM kernel (1M-element multiply-add) and a "
             f"PyTorch depthwise 3×3 convolution (32×56×56), alone and one after the other. {model}: "
             f"the whole graph as one tuned TVM module ({out.get('variant', 'tvm_wm_wm')}, "
             f"{out.get('trials', 64)} trials per task), warm, against eager in interleaved rounds"
             + ("; its matrix products PyTorch's (the `matmul` option)" if any(
                 r[_key(r)].get("modules_pytorch_products") for runs in out["runs"].values()
                 for r in runs) else "") + ".", "",
             "| TVM workers | processes | TVM kernel µs | PyTorch conv µs | the two in turn µs "
             f"| in turn ÷ sum alone | {model} tvm_wm ms | eager ms | tvm_wm ×eager | one module |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, runs in out["runs"].items():
        def med(f):
            return statistics.median(f(r) for r in runs)

        tvm_us, torch_us, pair = med(lambda r: r["mix"]["tvm_us"]), med(lambda r: r["mix"]["torch_us"]), \
            med(lambda r: r["mix"]["pair_us"])
        ratio = med(lambda r: r["mix"]["pair_us"] / (r["mix"]["tvm_us"] + r["mix"]["torch_us"]))
        tvm_ms, eager = med(lambda r: r[_key(r)]["tvm_wm_ms"]), med(lambda r: r[_key(r)]["eager_ms"])
        speed = med(lambda r: r[_key(r)]["eager_ms"] / r[_key(r)]["tvm_wm_ms"])
        one = all(r[_key(r)]["graphs_one_module"] == 1 for r in runs)
        lines.append(f"| {name} | {len(runs)} | {tvm_us:.0f} | {torch_us:.0f} | {pair:.0f} | ×{ratio:.2f} | "
                     f"{tvm_ms:.2f} | {eager:.2f} | ×{speed:.2f} | {'yes' if one else 'no'} |")
    open(os.path.join(RESULTS, f"{stem}.md"), "w").write("\n".join(lines) + "\n")


def _key(run: dict) -> str:
    return "model" if "model" in run else "mobilenet_v2"  # outputs from before --model say the model


if __name__ == "__main__":
    main()
