"""Share of ATen nodes lowered to TVM, forward and backward, for the evaluation networks.

    python benchmarks/coverage.py        # writes benchmarks/results/coverage.{json,md}
"""
import json
import os
import sys
from collections import Counter

import torch
from functorch.compile import make_boxed_func
from torch._dynamo.backends.common import aot_autograd

sys.path.insert(0, os.path.dirname(__file__))
from eval_models import MODELS  # noqa: E402

from torch_wm_backend.decompositions import decompositions  # noqa: E402
from torch_wm_backend.partition import partition  # noqa: E402

RESULTS = os.path.join(os.path.dirname(__file__), "results")


def measure(name):
    counts = {}

    def recorder(kind):
        def compile_graph(gm, _inputs):
            parts = partition(gm)
            c = counts.setdefault(kind, {"lowered": 0, "eager": 0, "eager_ops": Counter()})
            c["lowered"] += parts.nodes_lowered
            c["eager"] += parts.nodes_eager
            c["eager_ops"].update(parts.eager_ops)
            return make_boxed_func(gm.forward)  # run the graph as is: only counting here

        return compile_graph

    build, make_input = MODELS[name]
    torch.manual_seed(0)
    model = build().train()
    backend = aot_autograd(fw_compiler=recorder("forward"), bw_compiler=recorder("backward"),
                           decompositions=decompositions())
    out = torch.compile(model, backend=backend)(make_input())
    out = out if isinstance(out, torch.Tensor) else out.last_hidden_state
    out.float().mean().backward()
    torch._dynamo.reset()
    return {k: {"lowered": v["lowered"], "eager": v["eager"],
                "share": v["lowered"] / max(1, v["lowered"] + v["eager"]),
                "eager_ops": sorted(v["eager_ops"])} for k, v in counts.items()}


def main():
    results = {name: measure(name) for name in MODELS}
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "coverage.json"), "w") as f:
        json.dump({"torch": torch.__version__, "results": results}, f, indent=1)
    lines = ["| model | pass | ATen nodes to TVM | left to PyTorch | share lowered | ops left to PyTorch |",
             "|---|---|---|---|---|---|"]
    for name, kinds in results.items():
        for kind, r in kinds.items():
            lines.append(f"| {name} | {kind} | {r['lowered']} | {r['eager']} | {r['share']:.1%} | "
                         f"{', '.join(r['eager_ops']) or '-'} |")
    table = "\n".join(lines)
    with open(os.path.join(RESULTS, "coverage.md"), "w") as f:
        f.write("# ATen coverage (train mode: forward and backward graphs)\n\n" + table + "\n")
    print(table)


if __name__ == "__main__":
    main()
