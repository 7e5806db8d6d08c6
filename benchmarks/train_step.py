"""One training step (forward, backward, SGD step), batch 8, fp32, CPU: eager, Inductor, tvm_wm
untuned and tvm_wm tuned with the world model.

    python benchmarks/train_step.py [--trials 8]   # writes results/train_step.{json,md}

Models: a 2-layer BERT (hidden 256, 4 heads, sequence 64; transformers, built from a config) and a
small CNN (a ResNet stem and two bottlenecks, 64x64 images). Each variant trains its own copy of
the model; steps are timed in interleaved rounds in one process.
"""
import argparse
import copy
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
WORK = os.path.join(HERE, "work", "train_step")
RESULTS = os.path.join(HERE, "results")
BATCH = 8


def bert():
    import torch
    from transformers import BertConfig, BertModel

    cfg = BertConfig(vocab_size=1000, hidden_size=256, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=1024, max_position_embeddings=64, attn_implementation="eager",
                     hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    model = BertModel(cfg)
    ids = torch.randint(0, 1000, (BATCH, 64))
    return model, ids, lambda m, x: m(x).last_hidden_state.pow(2).mean()


def cnn():
    import torch
    from eval_models import Bottleneck, _bn_conv

    model = torch.nn.Sequential(_bn_conv(3, 64, 7, 2), torch.nn.MaxPool2d(3, 2, 1),
                                Bottleneck(64, 32, 1), Bottleneck(128, 32, 2),
                                torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(128, 10))
    x = torch.randn(BATCH, 3, 64, 64)
    y = torch.randint(0, 10, (BATCH,))
    return model, x, lambda m, inp: torch.nn.functional.cross_entropy(m(inp), y)


MODELS = {"bert_2layer": bert, "cnn": cnn}


def variants(trials: int, budget_s) -> dict:
    return {
        "eager": None,
        "inductor": {"backend": "inductor"},
        "tvm_wm_untuned": {"backend": "tvm_wm", "options": {
            "trials": 0, "cache_dir": os.path.join(WORK, "untuned")}},
        "tvm_wm_wm": {"backend": "tvm_wm", "options": {
            "trials": trials, "cost_model": "wm", "time_budget_s": budget_s,
            "cache_dir": os.path.join(WORK, f"wm_t{trials}")}},
    }


def main():
    import torch

    import torch_wm_backend
    from machine import describe

    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--budget-s", type=float, default=None, help="tuning cap per graph")
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    out = {"machine": describe(), "batch": BATCH, "trials": args.trials,
           "tuning_budget_s_per_graph": args.budget_s, "models": {}}
    for name, make in MODELS.items():
        torch.manual_seed(0)
        base, x, loss_fn = make()
        steps, first_s, stats = {}, {}, {}
        for variant, spec in variants(args.trials, args.budget_s).items():
            model = copy.deepcopy(base).train()
            fwd = model if spec is None else torch.compile(model, **spec)
            opt = torch.optim.SGD(model.parameters(), lr=1e-3)

            def step(fwd=fwd, opt=opt, model=model):
                opt.zero_grad(set_to_none=True)
                loss_fn(fwd, x).backward()
                opt.step()

            torch_wm_backend.reset_stats()
            start = time.perf_counter()
            step()  # compiles (and tunes)
            first_s[variant] = time.perf_counter() - start
            for _ in range(2):
                step()
            stats[variant] = torch_wm_backend.stats() if variant.startswith("tvm") else {}
            steps[variant] = step
            print(f"{name}/{variant}: first step {first_s[variant]:.1f} s", flush=True)
        samples = {v: [] for v in steps}
        for _ in range(args.rounds):  # interleaved
            for v, step in steps.items():
                start = time.perf_counter()
                step()
                samples[v].append((time.perf_counter() - start) * 1e3)
        ms = {v: statistics.median(s) for v, s in samples.items()}
        out["models"][name] = {"ms": ms, "first_step_s": first_s, "stats": {
            v: {k: s[k] for k in ("graphs_compiled", "subgraphs_compiled", "kernel_calls",
                                  "context_kept_tvm", "context_kept_eager", "trials_measured",
                                  "graphs_kept_compiled", "graphs_kept_eager")}
            for v, s in stats.items() if s}}
        print(name, {v: round(t, 1) for v, t in ms.items()}, flush=True)
        torch._dynamo.reset()
    os.makedirs(RESULTS, exist_ok=True)
    json.dump(out, open(os.path.join(RESULTS, "train_step.json"), "w"), indent=1)
    write_markdown(out)


def write_markdown(out):
    m = out["machine"]
    names = list(next(iter(out["models"].values()))["ms"])
    lines = [f"# One training step, batch {out['batch']}, fp32 — {m['cpu']}, {m['cores']} cores, {m['date']}",
             "", f"torch {m['torch']}, tvm {m['tvm']}; PyTorch on {m['torch_threads']} threads, TVM on "
             f"{m['tvm_threads']}. Forward + backward + SGD step, median ms of interleaved rounds "
             f"(×: eager's time / this one's); tvm_wm_wm tuned {out['trials']} trials per task"
             + (f", at most {out['tuning_budget_s_per_graph']:.0f} s per graph" if out.get("tuning_budget_s_per_graph") else "")
             + ".", "",
             "| model | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for model, r in out["models"].items():
        lines.append(f"| {model} | " + " | ".join(
            f"{r['ms'][v]:.1f} (×{r['ms']['eager'] / r['ms'][v]:.2f})" for v in names) + " |")
    lines += ["", "What ran in TVM (subgraphs compiled; kept in TVM / left to PyTorch by the selection, "
              "which races each training graph against its ATen graph in PyTorch; then, where some "
              "stay in TVM, a whole step of the compiled graphs races Dynamo's graph with eager "
              "autograd — the step column says which runs):", "",
              "| model / variant | graphs | subgraphs | kept in TVM | kept in PyTorch | trials | "
              "step runs | first step (s) |", "|---|---|---|---|---|---|---|---|"]
    for model, r in out["models"].items():
        for v, s in r["stats"].items():
            runs = ("compiled graphs" if s.get("graphs_kept_compiled") else
                    "Dynamo's graph, eager autograd" if s.get("graphs_kept_eager") else "-")
            lines.append(f"| {model}/{v} | {s['graphs_compiled']} | {s['subgraphs_compiled']} | "
                         f"{s['context_kept_tvm']} | {s['context_kept_eager']} | {s['trials_measured']} | "
                         f"{runs} | {r['first_step_s'][v]:.0f} |")
    from plots import speedup_bars

    speedup_bars(os.path.join(RESULTS, "train_step.png"),
                 {model: {v: r["ms"]["eager"] / r["ms"][v] for v in names if v != "eager"} for model, r in out["models"].items()},
                 f"one training step, batch {out['batch']}, {m['cores']} cores, {m['date'][:10]}")
    lines += ["", "![speedup over eager](train_step.png)"]
    with open(os.path.join(RESULTS, "train_step.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
