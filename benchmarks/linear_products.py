"""A linear layer's product four ways, CPU, BERT-base's dense shapes (128 tokens): PyTorch's
``F.linear`` (what eager runs), MKL's ``addmm`` on the weight's transposed copy (what a module with
PyTorch's products ran before packing), oneDNN's linear on the packed weight (runtime/products.py
``PackedWeight``) and MKL's packed GEMM (what Inductor's frozen-weights mode calls).

A model streams each layer's weight once per call, so each reading cycles through 12 weights of a
shape (BERT-base's 12 layers: 28-113 MB, beyond the caches) rather than one weight kept hot.
Rounds interleave the three; each reading is the mean over the 12 weights, ``--calls`` cycles.

    python benchmarks/linear_products.py [--rounds 9] [--name linear_products]   # results/<name>.{json,md}
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
RESULTS = os.path.join(HERE, "results")
ROWS, LAYERS = 128, 12
SHAPES = {"attention_768x768": (768, 768), "intermediate_768x3072": (768, 3072),
          "output_3072x768": (3072, 768)}  # (in, out)
WAYS = ("pytorch_linear", "mkl_addmm_transposed", "onednn_packed", "mkl_packed")


def layers(k: int, n: int) -> dict:
    """way -> 12 callables of one input, each with a weight of its own; checked against F.linear."""
    from torch_wm_backend.runtime.products import linear_packed

    out = {w: [] for w in WAYS}
    x = torch.randn(ROWS, k)
    for _ in range(LAYERS):
        weight, bias = torch.randn(n, k) / k ** 0.5, torch.randn(n)
        transposed, packed = weight.t().contiguous(), linear_packed(weight, ROWS)
        calls = {
            "pytorch_linear": lambda a, w=weight, b=bias: torch.nn.functional.linear(a, w, b),
            "mkl_addmm_transposed": lambda a, t=transposed, b=bias: torch.addmm(b, a, t),
            "onednn_packed": lambda a, p=packed, b=bias: torch.ops.mkldnn._linear_pointwise(
                a, p.tensor, b, "none", [], ""),
            # MKL's packed GEMM (what Inductor's freezing calls for a float32 linear on the CPU)
            "mkl_packed": lambda a, p=torch.ops.mkl._mkl_reorder_linear_weight(weight, ROWS), w=weight,
            b=bias: torch.ops.mkl._mkl_linear(a, p, w, b, ROWS),
        }
        want = calls["pytorch_linear"](x)
        for way, fn in calls.items():
            torch.testing.assert_close(fn(x), want, atol=1e-4, rtol=1e-4)
            out[way].append(fn)
    return out, x


def per_call_us(fns: list, x, cycles: int) -> float:
    start = time.perf_counter()
    for _ in range(cycles):
        for fn in fns:
            fn(x)
    return (time.perf_counter() - start) / (cycles * len(fns)) * 1e6


def main():
    from machine import describe, heading

    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--calls", type=int, default=10, help="cycles through the 12 weights per reading")
    parser.add_argument("--name", default="linear_products")
    args = parser.parse_args()
    out = {"machine": describe(), "rows": ROWS, "layers": LAYERS, "rounds": args.rounds,
           "cycles_per_reading": args.calls, "shapes": {}}
    for label, (k, n) in SHAPES.items():
        ways, x = layers(k, n)
        with torch.no_grad():
            for fns in ways.values():  # warm: pools started
                per_call_us(fns, x, 1)
            readings = {w: [] for w in ways}
            for _ in range(args.rounds):
                for w, fns in ways.items():
                    per_call_us(fns, x, 1)  # the first call after another way ran: untimed
                    readings[w].append(per_call_us(fns, x, args.calls))
        med = {w: statistics.median(r) for w, r in readings.items()}
        out["shapes"][label] = {"in": k, "out": n, "us": readings, "median_us": med,
                                "gflops": {w: 2 * ROWS * k * n / us / 1e3 for w, us in med.items()}}
        print(label, {w: round(v, 1) for w, v in med.items()}, flush=True)
    json.dump(out, open(os.path.join(RESULTS, f"{args.name}.json"), "w"), indent=1)
    lines = heading("A linear layer's product: PyTorch's linear, MKL on the transposed weight, "
                    "oneDNN and MKL on packed weights", out["machine"])
    lines += ["", f"{ROWS} rows (BERT-base at 128 tokens), bias added, fp32. Median of {args.rounds} "
              f"interleaved rounds; each reading the mean per call while cycling {args.calls} times "
              f"through {LAYERS} weights of the shape (µs per call, GFLOP/s).", "",
              "| shape (in x out) | PyTorch linear | MKL addmm, transposed copy | oneDNN, packed | "
              "MKL, packed | oneDNN packed / linear | MKL packed / linear |", "|---|---|---|---|---|---|---|"]
    for label, r in out["shapes"].items():
        m, g = r["median_us"], r["gflops"]
        cells = " | ".join(f"{m[w]:.0f} ({g[w]:.0f})" for w in WAYS)
        lines.append(f"| {label} | {cells} | ×{m['onednn_packed'] / m['pytorch_linear']:.2f} | "
                     f"×{m['mkl_packed'] / m['pytorch_linear']:.2f} |")
    open(os.path.join(RESULTS, f"{args.name}.md"), "w").write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
