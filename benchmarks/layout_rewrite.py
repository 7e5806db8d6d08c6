"""What tuned weight layouts buy, on ResNet-50's convolutions (batch 1, fp32, frozen weights):

    python benchmarks/layout_rewrite.py [--trials 64] [--cost-model wm]   # results/layout_rewrite.*

Each convolution (with its frozen batch norm and ReLU, one kernel) is tuned twice from an empty
in-memory database with the same seed: with the ``weight_layouts`` option — weight buffers
layout-free, so MetaSchedule's RewriteLayout may pick the weights' layout, changed once when they
are prepared (lower/freeze.py, ``prepack``) — and without (the default: PyTorch's layout). Both are
built, checked against PyTorch, and timed in interleaved rounds beside PyTorch's ``F.conv2d`` +
ReLU (oneDNN, NCHW) on the same shapes.
"""
import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
RESULTS = os.path.join(HERE, "results")
# (in channels, out channels, kernel, input size, stride): the kernels where the tuned ResNet-50
# lost most time to oneDNN (results/kernels_resnet50.md), and a 3x3 where it did not
SHAPES = [(512, 512, 3, 7, 1), (256, 512, 1, 56, 2), (512, 256, 1, 28, 1), (64, 64, 3, 56, 1)]


def conv_bn_relu(cin, cout, k, hw, stride):
    import torch

    torch.manual_seed(0)
    args = [torch.randn(1, cin, hw, hw), torch.randn(cout, cin, k, k) * 0.05,
            torch.randn(cout) * 0.1, torch.rand(cout) + 0.5, torch.rand(cout) + 0.5, torch.randn(cout)]

    def f(x, w, mean, var, gamma, beta):
        y = torch.ops.aten.convolution(x, w, None, [stride] * 2, [k // 2] * 2, [1, 1], False, [0, 0], 1)
        return torch.relu(torch.ops.aten._native_batch_norm_legit_no_training(
            y, gamma, beta, mean, var, 0.1, 1e-5)[0])

    return f, args, (1, 2, 3, 4, 5)


def tuned_kernel(f, args, weights, trials, cost_model, layout_free: bool):
    import torch
    from torch.fx.experimental.proxy_tensor import make_fx
    from tvm.s_tir import meta_schedule as ms

    from torch_wm_backend.build import build
    from torch_wm_backend.lower import target_for, to_relax
    from torch_wm_backend.runtime.kernel import kernel_for
    from torch_wm_backend.settings import Settings
    from torch_wm_backend.tune import tune

    mod = to_relax(make_fx(f)(*args), args, weights, weight_layouts=layout_free)
    target = target_for(torch.device("cpu"))
    database = ms.database.MemoryDatabase()
    start = time.perf_counter()
    tune([mod], target, Settings.from_options({"trials": trials, "cost_model": cost_model}),
         database, None, "layouts" if layout_free else "no layouts")
    tune_s = time.perf_counter() - start
    executable = build(mod, target, database)
    rewritten = "main_transform_params_layouts" in executable.as_text()
    kernel = kernel_for(executable, torch.device("cpu"), weights)
    torch.testing.assert_close(kernel(args)[0], f(*args), atol=1e-3, rtol=1e-3)
    return kernel, rewritten, tune_s


def measure(shape, trials, cost_model) -> dict:
    import torch
    import torch.nn.functional as F
    from machine import interleaved, median

    cin, cout, k, hw, stride = shape
    f, args, weights = conv_bn_relu(*shape)
    with_layouts, rewritten, tune_with = tuned_kernel(f, args, weights, trials, cost_model, True)
    plain, _, tune_plain = tuned_kernel(f, args, weights, trials, cost_model, False)
    x, w = args[0], args[1]
    with torch.no_grad():
        us = median(interleaved({"tvm_layouts": lambda: with_layouts(args), "tvm_plain": lambda: plain(args),
                                 "onednn": lambda: torch.relu(F.conv2d(x, w, None, stride, k // 2))},
                                rounds=30, calls=5), 1e6)
    ho = (hw + 2 * (k // 2) - k) // stride + 1
    gflop = 2.0 * cout * ho * ho * cin * k * k / 1e9
    return {"shape": {"cin": cin, "cout": cout, "kernel": k, "size": hw, "stride": stride},
            "gflop": gflop, "us": us, "gflops": {n: gflop / t * 1e6 for n, t in us.items()},
            "layout_rewritten": rewritten, "tune_s": {"tvm_layouts": tune_with, "tvm_plain": tune_plain}}


def write(out: dict) -> None:
    from machine import heading, save_markdown

    path = os.path.join(RESULTS, "layout_rewrite")
    json.dump(out, open(path + ".json", "w"), indent=1)
    lines = heading("Tuned weight layouts on ResNet-50's convolutions", out["machine"])
    lines[-1] += (f" Conv + frozen batch norm + ReLU, batch 1, one kernel, tuned {out['trials']} "
                  f"trials with `{out['cost_model']}` from an empty database, with weight layouts "
                  "chosen by tuning (`weight_layouts`: layout-free weights, changed once when "
                  "prepared) and without; PyTorch: `F.conv2d` + ReLU (oneDNN, NCHW). Median µs of "
                  "interleaved rounds (GFLOP/s).")
    lines += ["", "| conv (in → out, k, size, stride) | layout changed | TVM, tuned layouts | "
              "TVM, PyTorch's layout | oneDNN | layouts ÷ plain | tuning s, layouts / plain |",
              "|---|---|---|---|---|---|---|"]
    for r in out["rows"]:
        s, us, g = r["shape"], r["us"], r["gflops"]
        lines.append(f"| {s['cin']} → {s['cout']}, {s['kernel']}×{s['kernel']}, {s['size']}², "
                     f"s{s['stride']} | {'yes' if r['layout_rewritten'] else 'no'} | "
                     + " | ".join(f"{us[n]:.0f} ({g[n]:.0f})" for n in ("tvm_layouts", "tvm_plain", "onednn"))
                     + f" | ×{us['tvm_plain'] / us['tvm_layouts']:.2f} | "
                     f"{r['tune_s']['tvm_layouts']:.0f} / {r['tune_s']['tvm_plain']:.0f} |")
    save_markdown(path, lines)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=64)
    parser.add_argument("--cost-model", default="wm", choices=["wm", "xgb", "random"])
    parser.add_argument("--shapes", type=int, nargs="*", help="indices into SHAPES (default: all)")
    args = parser.parse_args()
    from machine import describe

    machine = describe()  # before tuning: it sets TVM's thread count, which the runner inherits
    rows = []
    for i in args.shapes if args.shapes is not None else range(len(SHAPES)):
        rows.append(measure(SHAPES[i], args.trials, args.cost_model))
        print(rows[-1]["shape"], {n: round(t) for n, t in rows[-1]["us"].items()}, flush=True)
    os.makedirs(RESULTS, exist_ok=True)
    write({"machine": machine, "trials": args.trials, "cost_model": args.cost_model, "rows": rows})


if __name__ == "__main__":
    main()
