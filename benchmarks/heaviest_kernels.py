"""A tuned model's heaviest kernels beside PyTorch's (oneDNN, MKL) on the same shapes.

    python benchmarks/heaviest_kernels.py resnet50 [--cache benchmarks/work/e2e/tvm_wm_wm_t64] [--top 10]
        [--layout NHWC] [--weight-layouts]   # the options the cache was tuned with
        [--out benchmarks/results/<folder>]

Lowers the model as the backend does (one module, frozen weights), takes each task's best latency
from the cache's tuning records (the tuner's own measurements, as `tune/progress.py` tabulates
them) and ranks the tasks by their share of a model call (calls × best latency). For each of the
heaviest that is a 2-D convolution, PyTorch's `F.conv2d` on the same shapes is timed in this
process, NCHW and channels-last (oneDNN); for each matrix product, `F.linear` (MKL). GFLOP/s
count the convolution's or product's multiply-adds alone for both sides (TVM's kernels also do the
folded batch norm, bias and activation). Writes results/kernels_<model>[_nhwc][_packed].{json,md}
(or into --out).
"""
import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
RESULTS = os.path.join(HERE, "results")


def conv_shape(mod, layout: str = "NCHW"):
    """(data shape, weight shape, stride, padding, groups), in PyTorch's NCHW / OIHW terms, of a
    task whose first two parameters are a convolution's data and weight (NCHW and OIHW, or with
    ``layout`` "NHWC", NHWC and HWIO), or None. Stride and padding are read back from the output's
    shape, assuming PyTorch's usual (k - 1) // 2 padding."""
    func = mod["main"] if hasattr(mod, "functions") else mod
    params = [p for p in func.params if getattr(p, "shape", None) is not None]  # buffers
    if len(params) < 3 or any(len(b.shape) != 4 for b in (params[0], params[1], params[-1])):
        return None
    (n, c, h, w), (o, ci, kh, kw), out = ([int(d) for d in b.shape] for b in
                                           (params[0], params[1], params[-1]))
    if layout == "NHWC":  # data N,H,W,C; weight H,W,I,O; output N,H,W,O
        (n, h, w, c), (kh, kw, ci, o), out = (n, c, h, w), (o, ci, kh, kw), [out[0], out[3], *out[1:3]]
    if c % ci or out[1] != o or kh != kw:
        return None
    pad = (kh - 1) // 2
    for stride in (1, 2):
        if (h + 2 * pad - kh) // stride + 1 == out[2] and (w + 2 * pad - kw) // stride + 1 == out[3]:
            return (n, c, h, w), (o, ci, kh, kw), stride, pad, c // ci
    return None


def matmul_shape(mod):
    """(M, K, N) of a task whose first two parameters are a matrix product's operands, (M, K) and
    (K, N) — PyTorch's linear layers as the backend lowers them, weights transposed when prepared —
    and whose last is its (M, N) output; or None."""
    func = mod["main"] if hasattr(mod, "functions") else mod
    params = [p for p in func.params if getattr(p, "shape", None) is not None]
    if len(params) < 3:
        return None
    a, b, out = ([int(d) for d in p.shape] for p in (params[0], params[1], params[-1]))
    if len(a) != 2 or len(b) != 2 or a[1] != b[0] or out != [a[0], b[1]]:
        return None
    return a[0], a[1], b[1]


def torch_matmul_us(m: int, k: int, n: int) -> float:
    """PyTorch's ``F.linear`` (MKL) with bias on the same shapes, best of 15 rounds."""
    import torch
    import torch.nn.functional as F
    from machine import timed

    x, w, b = torch.randn(m, k), torch.randn(n, k), torch.randn(n)
    with torch.no_grad():
        readings = timed(lambda: F.linear(x, w, b), 15, calls=5, warmup=5)
    return min(readings) * 1e6


def conv_flops(data, weight, stride, pad) -> float:
    n, _, h, w = data
    o, ci, kh, kw = weight
    ho, wo = (h + 2 * pad - kh) // stride + 1, (w + 2 * pad - kw) // stride + 1
    return 2.0 * n * o * ho * wo * ci * kh * kw


def torch_conv_us(data, weight, stride, pad, groups, channels_last: bool) -> float:
    import torch
    import torch.nn.functional as F

    x, w = torch.randn(data), torch.randn(weight)
    if channels_last:
        x, w = x.to(memory_format=torch.channels_last), w.to(memory_format=torch.channels_last)
    from machine import timed

    with torch.no_grad():
        readings = timed(lambda: F.conv2d(x, w, None, stride, pad, 1, groups), 15, calls=5, warmup=5)
    return min(readings) * 1e6  # the least disturbed reading, as the tuner's runner keeps its best


def measure(model: str, cache: str, top: int, layout: str = "NCHW",
            weight_layouts: bool = False) -> dict:
    import torch

    from machine import describe
    from torch_wm_backend import threads
    from torch_wm_backend.cache.records import open_records
    from torch_wm_backend.lower.target import target_for
    from torch_wm_backend.tune.progress import rows
    from tuning_curve import model_tasks

    threads.sync()
    target = target_for(torch.device("cpu"))
    tasks, weights = model_tasks(model, target, layout, weight_layouts)
    database = open_records(cache, target)
    table = rows(tasks, weights, database)
    for row, task in zip(table, tasks):
        row["share_us"] = row["calls"] * row["best_us"] if row["best_us"] else 0.0
        row["conv"] = conv_shape(task.dispatched[0], layout)
        row["matmul"] = matmul_shape(task.dispatched[0])
    total = sum(r["share_us"] for r in table)
    heavy = sorted(table, key=lambda r: r["share_us"], reverse=True)[:top]
    for r in heavy:
        r["share"] = r["share_us"] / total if total else 0.0
        if r["conv"] and r["best_us"]:
            data, weight, stride, pad, groups = r["conv"]
            work = conv_flops(data, weight, stride, pad) / groups
            r["conv_gflop"] = work / 1e9
            r["tvm_conv_gflops"] = work / r["best_us"] / 1e3
            for name, cl in (("torch_nchw", False), ("torch_channels_last", True)):
                us = torch_conv_us(data, weight, stride, pad, groups, cl)
                r[f"{name}_us"], r[f"{name}_gflops"] = us, work / us / 1e3
        elif r["matmul"] and r["best_us"]:
            m, k, n = r["matmul"]
            work = 2.0 * m * k * n
            r["tvm_matmul_gflops"] = work / r["best_us"] / 1e3
            r["torch_linear_us"] = us = torch_matmul_us(m, k, n)
            r["torch_linear_gflops"] = work / us / 1e3
    return {"machine": describe(), "model": model, "layout": layout, "weight_layouts": weight_layouts,
            "cache": os.path.relpath(cache, HERE),
            "tasks": len(tasks), "kernels_us_per_call": total, "heaviest": heavy}


def write(out: dict, folder: str = RESULTS) -> None:
    from machine import heading, save_markdown

    suffix = ("" if out.get("layout", "NCHW") == "NCHW" else "_" + out["layout"].lower()) + \
        ("_packed" if out.get("weight_layouts") else "")
    path = os.path.join(folder, f"kernels_{out['model']}{suffix}")
    json.dump(out, open(path + ".json", "w"), indent=1)
    lines = heading(f"{out['model']}: the heaviest tuned kernels beside PyTorch's", out["machine"])
    lines[-1] += (f" Tuned kernels from `{out['cache']}` (layout {out.get('layout', 'NCHW')}, "
                  f"{out['tasks']} tasks; the tuner's best "
                  f"measurement each, Σ calls × latency {out['kernels_us_per_call'] / 1e3:.2f} ms per "
                  "model call)" + (", weight layouts chosen by tuning" if out.get("weight_layouts")
                                   else "") + ". PyTorch: `F.conv2d` (or, for a matrix product, "
                  "`F.linear` with bias, MKL) alone on the same shapes, best of 15 rounds, in "
                  "this process. GFLOP/s: the convolution's or product's multiply-adds (×2) over each "
                  "side's time. The tuner measures each candidate with its weights flushed from the "
                  "caches since 2026-12-04 (tune/tuner.py); PyTorch's are timed hot.")
    lines += ["", "| kernel | share | calls | conv (data → weight, stride, groups) | TVM µs | "
              "TVM GFLOP/s | PyTorch µs (oneDNN NCHW; MKL) | GFLOP/s | oneDNN channels-last µs | GFLOP/s |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for r in out["heaviest"]:
        if r.get("conv") and "tvm_conv_gflops" in r:
            data, weight, stride, _, groups = r["conv"]
            shape = f"{'×'.join(map(str, data))} → {'×'.join(map(str, weight))}, s{stride}, g{groups}"
            rest = (f"{r['best_us']:.1f} | {r['tvm_conv_gflops']:.1f} | {r['torch_nchw_us']:.1f} | "
                    f"{r['torch_nchw_gflops']:.1f} | {r['torch_channels_last_us']:.1f} | "
                    f"{r['torch_channels_last_gflops']:.1f}")
        elif r.get("matmul") and "tvm_matmul_gflops" in r:
            m, k, n = r["matmul"]
            shape = f"matmul {m}×{k} · {k}×{n}"
            rest = (f"{r['best_us']:.1f} | {r['tvm_matmul_gflops']:.1f} | {r['torch_linear_us']:.1f} | "
                    f"{r['torch_linear_gflops']:.1f} | - | -")
        else:
            shape = "-"
            rest = (f"{r['best_us']:.1f} | " if r["best_us"] else "- | ") + "- | - | - | - | -"
        lines.append(f"| {r['kernel']} | {r['share']:.0%} | {r['calls']:g} | {shape} | {rest} |")
    save_markdown(path, lines)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("--cache", default=os.path.join(HERE, "work", "e2e", "tvm_wm_wm_t64"))
    parser.add_argument("--top", type=int, default=10)
    parser.add_argument("--layout", default="NCHW", choices=["NCHW", "NHWC"],
                        help="the layout option the cache was tuned with")
    parser.add_argument("--weight-layouts", action="store_true",
                        help="the cache was tuned with the weight_layouts option")
    parser.add_argument("--out", default=RESULTS, help="the folder kernels_<model>*.json/.md go to")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    write(measure(args.model, args.cache, args.top, args.layout, args.weight_layouts), args.out)


if __name__ == "__main__":
    main()
