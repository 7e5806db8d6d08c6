"""Softmax kernels side by side, CPU: PyTorch's, TVM's with the row schedule (build/cpu_softmax.py)
and TVM's with the generic default schedule (build/cpu_default.py, which a softmax got before).

Shapes: BERT-base's attention at 128 tokens (1 × 12 × 128 × 128) and 512-long rows (8 × 512 × 512).
Rounds interleave the three; each reading is the mean of 200 calls.

    python benchmarks/softmax_kernel.py [--rounds 9] [--name softmax_kernel]   # results/<name>.{json,md}
"""
import argparse
import json
import os
import statistics
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
RESULTS = os.path.join(HERE, "results")
SHAPES = {"bert_base_attention": (1, 12, 128, 128), "rows_of_512": (8, 512, 512)}


class Softmax(torch.nn.Module):
    def forward(self, x):
        return torch.softmax(x, -1)


def kernels(shape) -> dict:
    """name -> (callable, inputs) for one shape; each TVM kernel checked against PyTorch first."""
    from torch_wm_backend.build import build
    from torch_wm_backend.lower import to_relax
    from torch_wm_backend.lower.freeze import exported
    from torch_wm_backend.lower.legalize import ROW_SOFTMAX
    from torch_wm_backend.lower.target import cpu_target
    from torch_wm_backend.runtime.kernel import kernel_for
    from torch_wm_backend.tune.tasks import prepare

    x = torch.randn(shape)
    gm, args, _ = exported(Softmax(), (x,))
    mod = prepare(to_relax(gm, args))
    generic = mod.__class__({gv: (f.without_attr(ROW_SOFTMAX) if ROW_SOFTMAX in (f.attrs or {}) else f)
                             for gv, f in mod.functions.items()}, attrs=mod.attrs)
    out = {"pytorch": (lambda a: torch.softmax(a[0], -1), [x])}
    for name, m in (("tvm_row_schedule", mod), ("tvm_generic_default", generic)):
        k = kernel_for(build(m, cpu_target()), torch.device("cpu"))
        torch.testing.assert_close(k(args)[0], torch.softmax(x, -1), atol=1e-6, rtol=1e-5)
        out[name] = (k, args)
    return out


def per_call_us(fn, args, calls=200) -> float:
    import time

    start = time.perf_counter()
    for _ in range(calls):
        fn(args)
    return (time.perf_counter() - start) / calls * 1e6


def main():
    from machine import describe, heading

    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--name", default="softmax_kernel")
    args = parser.parse_args()
    out = {"machine": describe(), "rounds": args.rounds, "calls_per_reading": 200, "shapes": {}}
    for label, shape in SHAPES.items():
        ks = kernels(shape)
        for fn, a in ks.values():  # warm: pools started, caches filled
            per_call_us(fn, a, 20)
        readings = {name: [] for name in ks}
        for _ in range(args.rounds):
            for name, (fn, a) in ks.items():
                readings[name].append(per_call_us(fn, a))
        out["shapes"][label] = {"shape": list(shape), "us": readings,
                                "median_us": {n: statistics.median(r) for n, r in readings.items()}}
        print(label, {n: round(v, 1) for n, v in out["shapes"][label]["median_us"].items()}, flush=True)
    json.dump(out, open(os.path.join(RESULTS, f"{args.name}.json"), "w"), indent=1)
    lines = heading("Softmax kernels: PyTorch, TVM row schedule, TVM generic default", out["machine"])
    lines += ["", f"Median of {args.rounds} interleaved rounds, each the mean of 200 calls (µs per call; "
              "TVM's include the Relax VM call).", "",
              "| shape | PyTorch | TVM row schedule | TVM generic default | row / PyTorch |",
              "|---|---|---|---|---|"]
    for label, r in out["shapes"].items():
        m = r["median_us"]
        lines.append(f"| {label} {tuple(r['shape'])} | {m['pytorch']:.1f} | {m['tvm_row_schedule']:.1f} | "
                     f"{m['tvm_generic_default']:.1f} | ×{m['tvm_row_schedule'] / m['pytorch']:.2f} |")
    open(os.path.join(RESULTS, f"{args.name}.md"), "w").write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
