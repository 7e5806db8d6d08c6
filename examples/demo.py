"""End to end in a few minutes: compile a small CNN with tvm_wm, tune it briefly, check it, time it.

    python examples/demo.py [--trials N]
"""
import argparse
import logging
import tempfile
import time

import torch

import torch_wm_backend


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--cost-model", default="wm", choices=["wm", "xgb", "random"])
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("torch").setLevel(logging.WARNING)
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.BatchNorm2d(16), torch.nn.ReLU(),
        torch.nn.Conv2d(16, 16, 3, padding=1, groups=16), torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(16, 10),
    ).eval()
    x = torch.randn(1, 3, 32, 32)
    options = {"trials": args.trials, "cost_model": args.cost_model,
               "cache_dir": tempfile.mkdtemp(prefix="tvm_wm_demo_")}
    compiled = torch.compile(model, backend="tvm_wm", options=options)
    with torch.no_grad():
        start = time.perf_counter()
        out = compiled(x)
        print(f"first output after {time.perf_counter() - start:.1f} s (lowering + tuning + build)")
        torch.testing.assert_close(out, model(x), atol=1e-4, rtol=1e-4)
        print("matches eager")
        for name, fn in (("eager", model), ("tvm_wm", compiled)):
            for _ in range(10):
                fn(x)
            start = time.perf_counter()
            for _ in range(100):
                fn(x)
            print(f"{name}: {(time.perf_counter() - start) * 10:.3f} ms per call")
    print(torch_wm_backend.stats())


if __name__ == "__main__":
    main()
