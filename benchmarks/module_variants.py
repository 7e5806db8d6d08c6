"""One model's whole-graph module lowered in other ways, from the same tuning records, timed side by side.

    python benchmarks/module_variants.py conv_mix mobilenet_v2 [--cache benchmarks/work/e2e/tvm_wm_wm_nhwc_t32]
        [--rounds 25] [--out benchmarks/results/<folder>]
    python benchmarks/module_variants.py bn_fold mobilenet_v2 ...

Each module is channels-last with frozen weights, as the backend builds a CNN's; the variants are
timed with eager PyTorch in interleaved rounds in this process. Writes <set>_<model>.{json,md}.

conv_mix — which convolutions oneDNN computes inside the module. ``matmul="auto"`` races two whole
modules: TVM's convolutions throughout, or oneDNN's throughout (lower/convolutions.py). Standalone,
oneDNN's channels-last 1×1 convolutions beat MobileNetV2's tuned ones
(results/e2e_v2.1/kernels_mobilenet_v2_nhwc.md); a third module has oneDNN compute only those
(``to_onednn(keep=...)``) and TVM the rest. A module that calls PyTorch runs TVM's kernels on the
calling thread (threads.py, ``calling_thread_only``), as the backend does; the 1×1 module is also
timed with TVM's pool on all threads.

bn_fold — batch norms folded into the convolutions' weights (lower/batch_norm.py, what the backend
lowers) against left as elementwise work in the convolutions' kernels. The records must hold both
lowerings' tuned kernels (tune the model with the code of each).
"""
import argparse
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
RESULTS = os.path.join(HERE, "results")

SETS = {"conv_mix": ["tvm", "onednn_all", "onednn_1x1", "onednn_1x1_pool"],
        "bn_fold": ["tvm", "bn_unfolded"]}
LABELS = {"tvm": "TVM's convolutions (all), batch norms folded (the backend's lowering)",
          "onednn_all": "oneDNN's convolutions (all)",
          "onednn_1x1": "oneDNN's 1×1, TVM's others (TVM on the calling thread)",
          "onednn_1x1_pool": "oneDNN's 1×1, TVM's others (TVM's pool on all threads)",
          "bn_unfolded": "TVM's convolutions (all), batch norms left in their kernels",
          "eager": "eager PyTorch"}
TITLES = {"conv_mix": "which convolutions oneDNN computes inside the module",
          "bn_fold": "batch norms folded into the convolutions or not"}


def one_by_one(geometry: dict) -> bool:
    o, i, kh, kw = geometry["weight"]
    return kh == kw == 1 and geometry["groups"] == 1


def modules(model, x, names: list) -> tuple:
    """name -> lowered module (a name ending in _pool: its module, run with TVM's pool), the
    graph's inputs and its weights' positions."""
    from torch_wm_backend.lower import variants
    from torch_wm_backend.lower.batch_norm import fold_batch_norms
    from torch_wm_backend.lower.convolutions import to_onednn
    from torch_wm_backend.lower.freeze import exported, lift_weights
    from torch_wm_backend.lower.importer import imported

    gm, args, weights = exported(model, (x,))
    both = variants(gm, args, weights, "NHWC", False, ("tvm", "pytorch"))
    nhwc, num_input, _ = imported(gm, args, weights, "NHWC")
    built = {"tvm": lambda: both["tvm"], "onednn_all": lambda: both["pytorch"],
             "onednn_1x1": lambda: lift_weights(fold_batch_norms(to_onednn(nhwc, num_input, keep=one_by_one),
                                                                 num_input), num_input),
             "bn_unfolded": lambda: lift_weights(nhwc, num_input)}
    return {n: built[n.removesuffix("_pool")]() for n in names}, args, weights


def measure(which: str, name: str, cache: str, rounds: int) -> dict:
    import torch

    from eval_models import MODELS
    from machine import describe
    from torch_wm_backend.build import build
    from torch_wm_backend.cache.records import open_records
    from torch_wm_backend.lower.target import target_for
    from torch_wm_backend.runtime.kernel import kernel_for

    machine = describe()
    make, inputs = MODELS[name]
    model, x = make().eval(), inputs()
    target = target_for(torch.device("cpu"))
    database = open_records(cache, target)
    mods, args, weights = modules(model, x, SETS[which])
    with torch.no_grad():
        want = model(x)
    runs = {}
    for variant, mod in mods.items():
        kernel = kernel_for(build(mod, target, database), torch.device("cpu"), weights)
        if variant.startswith("onednn") and not variant.endswith("_pool"):
            kernel.matmul = "pytorch"  # as the backend runs a module that calls PyTorch
        torch.testing.assert_close(kernel(args)[0], want, atol=1e-4, rtol=1e-4)
        runs[variant] = kernel
    fns = {v: (lambda k=k: k(args)) for v, k in runs.items()}
    fns["eager"] = lambda: model(x)
    times = {v: [] for v in fns}
    with torch.no_grad():
        for _ in range(rounds):
            for v, fn in fns.items():
                fn()  # untimed: the other side's pool still spinning (select/race.py)
                start = time.perf_counter()
                fn(), fn()
                times[v].append((time.perf_counter() - start) / 2)
    convs = {v: str(m["main"]).count("tvm_wm.torch_conv\"") for v, m in mods.items()}
    return {"machine": machine, "set": which, "model": name, "cache": os.path.relpath(cache, HERE),
            "rounds": rounds, "onednn_convs": convs,
            "median_ms": {v: statistics.median(t) * 1e3 for v, t in times.items()},
            "p10_ms": {v: sorted(t)[len(t) // 10] * 1e3 for v, t in times.items()}}


def write(out: dict, folder: str) -> None:
    from machine import heading, save_markdown

    path = os.path.join(folder, f"{out['set']}_{out['model']}")
    json.dump(out, open(path + ".json", "w"), indent=1)
    lines = heading(f"{out['model']}: {TITLES[out['set']]}", out["machine"])
    lines[-1] += (f" One channels-last module per row, weights frozen, tuned kernels from "
                  f"`{out['cache']}`; median and 10th percentile of {out['rounds']} interleaved rounds "
                  "(each: one untimed call, then the mean of two).")
    base = out["median_ms"]["tvm"]
    lines += ["", "| module | oneDNN convolutions | median ms | p10 ms | ×first row's |", "|---|---|---|---|---|"]
    for v, ms in out["median_ms"].items():
        convs = out["onednn_convs"].get(v, 0) if v != "eager" else "-"
        lines.append(f"| {LABELS[v]} | {convs} | {ms:.2f} | {out['p10_ms'][v]:.2f} | ×{base / ms:.2f} |")
    save_markdown(path, lines)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("set", choices=sorted(SETS))
    parser.add_argument("model")
    parser.add_argument("--cache", default=os.path.join(HERE, "work", "e2e", "tvm_wm_wm_nhwc_t32"))
    parser.add_argument("--rounds", type=int, default=25)
    parser.add_argument("--out", default=RESULTS)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    write(measure(args.set, args.model, args.cache, args.rounds), args.out)


if __name__ == "__main__":
    main()
