"""Default (unscheduled) kernel vs the best of 64 searched candidates, MobileNetV2 subgraphs, CPU.

Reads the kernels `e2e.py tune --trials 64` built (benchmarks/work/e2e/*); times each alone on
random inputs, median of 60 calls, with warm caches and with the caches flushed (64 MiB written)
before each call. Writes results/default_vs_tuned.{json,md}.

    python benchmarks/default_vs_tuned.py
"""
import glob
import json
import os
import sys
import time

import torch
import tvm

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
VARIANTS = {"default": "tvm_wm_untuned", "xgb@64": "tvm_wm_xgb_t64", "wm@64": "tvm_wm_wm_t64"}
SUBGRAPHS = ["tvm_subgraph_4", "tvm_subgraph_7", "tvm_subgraph_20", "tvm_subgraph_23"]


def _kernel(cache: str, subgraph: str, shapes=None):
    """The subgraph's kernel in that cache; ``shapes`` tells apart models whose subgraphs share a
    name (the untuned cache holds all three)."""
    for meta in glob.glob(os.path.join(HERE, "work", "e2e", cache, "artifacts", "*", "meta.json")):
        m = json.load(open(meta))
        if (m["extra"].get("subgraph") == f"inference/{subgraph}" and "kernel.so" in m["files"]
                and (shapes is None or m["parts"]["shapes"] == shapes)):
            return m, os.path.join(os.path.dirname(meta), "kernel.so")
    return None


def _median_ms(kernel, args, flush, scratch, n=60) -> float:
    samples = []
    for _ in range(n):
        if flush:
            scratch.fill_(1)
        start = time.perf_counter()
        kernel(args)
        samples.append(time.perf_counter() - start)
    return sorted(samples)[n // 2] * 1e3


def main() -> None:
    from machine import describe
    from torch_wm_backend.runtime.kernel import Kernel

    scratch = torch.empty(64 << 20, dtype=torch.uint8)
    rows = {}
    for sub in SUBGRAPHS:
        reference = _kernel(VARIANTS["xgb@64"], sub)  # MobileNetV2 only was tuned
        if reference is None:
            continue
        for name, cache in VARIANTS.items():
            found = _kernel(cache, sub, reference[0]["parts"]["shapes"])
            if found is None:
                continue
            meta, path = found
            torch.manual_seed(0)
            args = [torch.randn(*shape) for shape, _, _ in meta["parts"]["shapes"]]
            kernel = Kernel(tvm.runtime.load_module(path), torch.device("cpu"))
            kernel(args)
            rows.setdefault(sub, {"input": meta["parts"]["shapes"][0][0]})[name] = {
                "warm_ms": _median_ms(kernel, args, False, scratch),
                "flushed_ms": _median_ms(kernel, args, True, scratch)}
    out = {"machine": describe(), "subgraphs": rows}
    json.dump(out, open(os.path.join(HERE, "results", "default_vs_tuned.json"), "w"), indent=1)
    m = out["machine"]
    lines = [f"# Default kernel vs best of 64 searched — MobileNetV2 subgraphs, {m['cpu']}, "
             f"{m['cores']} cores, {m['date']}", "",
             "Median ms of 60 calls, each kernel alone: warm caches / caches flushed before each call.", "",
             "| subgraph | input | " + " | ".join(VARIANTS) + " |", "|---|---|" + "---|" * len(VARIANTS)]
    for sub, r in rows.items():
        cells = [f"{r[v]['warm_ms']:.3f} / {r[v]['flushed_ms']:.3f}" if v in r else "-" for v in VARIANTS]
        lines.append(f"| {sub} | {r['input']} | " + " | ".join(cells) + " |")
    open(os.path.join(HERE, "results", "default_vs_tuned.md"), "w").write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
