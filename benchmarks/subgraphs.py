"""The representative subgraphs of the paper's protocol, chosen reproducibly.

From each evaluation network (ResNet-50, MobileNetV2, BERT-base, GPT-2; batch 1, fp32, this CPU)
take its MetaSchedule tasks, rank them by weight x FLOPs (the share of the network's work they
carry), and keep the heaviest ``PER_NET`` of each whose workload is not already chosen: 10 in all.
The world model never trains on these: its collector drops every training task whose workload hash
occurs in an evaluation network (``tvm-wm collect``); ``check_not_trained`` verifies it on the data.

    python benchmarks/subgraphs.py      # prints the table, writes results/subgraphs.md
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
RESULTS = os.path.join(HERE, "results")
NETWORKS = {"resnet50": 3, "mobilenet_v2": 3, "bert_base": 2, "gpt2": 2}


def representative(target=None) -> list:
    """[(name, task, flops, weight)] — about 10 tasks, heaviest first within each network."""
    from torch_wm_backend.world_model.collect import (cpu_target, load_zoo, network_tasks,
                                                      task_flops, task_hash)

    zoo = load_zoo(os.path.join(HERE, "zoo.py"))
    target = target or cpu_target()
    chosen, seen = [], set()
    for net, count in NETWORKS.items():
        kept = 0
        for task in network_tasks(zoo, net, target):  # heaviest (weight x flops) first
            h = task_hash(task)
            if h in seen or task_flops(task) < 1e6:
                continue
            seen.add(h)
            chosen.append((f"{net}/{task.task_name}", task, task_flops(task), float(task.weight)))
            kept += 1
            if kept == count:
                break
    return chosen


def check_not_trained(chosen, data_dir=os.path.join(HERE, "work", "wm_data")) -> list:
    """Names of chosen subgraphs whose workload is among the world model's training tasks
    (the ``tasks.json`` manifests of the collector's training networks)."""
    import glob
    import json

    from torch_wm_backend.world_model.collect import task_hash

    trained = set()
    for path in glob.glob(os.path.join(data_dir, "*", "tasks.json")):
        if os.path.basename(os.path.dirname(path)) not in NETWORKS:  # a training network
            trained |= set(json.load(open(path)))
    return [name for name, task, _, _ in chosen if task_hash(task) in trained]


def main():
    chosen = representative()
    lines = ["| # | subgraph | MFLOP | weight |", "|---|---|---|---|"]
    for i, (name, _, flops, weight) in enumerate(chosen):
        lines.append(f"| {i} | {name} | {flops / 1e6:.1f} | {weight:g} |")
    leaked = check_not_trained(chosen)
    text = "\n".join(lines) + f"\n\nIn the world model's training data: {leaked or 'none'}\n"
    os.makedirs(RESULTS, exist_ok=True)
    open(os.path.join(RESULTS, "subgraphs.md"), "w").write("# Representative subgraphs\n\n" + text)
    print(text)


if __name__ == "__main__":
    main()
