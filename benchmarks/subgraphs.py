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
        for task in network_tasks(zoo, net, target, "NCHW"):  # heaviest first; the layout they were chosen in
            h = task_hash(task)
            if h in seen or task_flops(task) < 1e6:
                continue
            seen.add(h)
            chosen.append((f"{net}/{task.task_name}", task, task_flops(task), float(task.weight)))
            kept += 1
            if kept == count:
                break
    return chosen


def training_tasks(data_dir=os.path.join(HERE, "work", "wm_data_t2")) -> tuple:
    """(workload hashes, network names) of the world model's training data: the ``tasks.json``
    manifests the collector writes for each training network."""
    import glob
    import json

    trained, nets = set(), []
    for path in glob.glob(os.path.join(data_dir, "*", "tasks.json")):
        if os.path.basename(os.path.dirname(path)) not in NETWORKS:  # a training network
            trained |= set(json.load(open(path)))
            nets.append(os.path.basename(os.path.dirname(path)))
    if not nets:
        raise FileNotFoundError(f"no training manifests under {data_dir}: run `tvm-wm collect` first")
    return trained, sorted(nets)


def check_not_trained(chosen, trained: set) -> list:
    """Names of chosen subgraphs whose workload is among the training tasks."""
    from torch_wm_backend.world_model.collect import task_hash

    return [name for name, task, _, _ in chosen if task_hash(task) in trained]


def write(chosen) -> str:
    """results/subgraphs.md: the table and the leak check; returns its text."""
    lines = ["| # | subgraph | MFLOP | weight |", "|---|---|---|---|"]
    for i, (name, _, flops, weight) in enumerate(chosen):
        lines.append(f"| {i} | {name} | {flops / 1e6:.1f} | {weight:g} |")
    trained, nets = training_tasks()
    leaked = check_not_trained(chosen, trained)
    text = "\n".join(lines) + (f"\n\nChecked against the world model's training data ({len(trained)} tasks of "
                               f"{len(nets)} networks: {', '.join(nets)}): in it: {leaked or 'none'}\n")
    os.makedirs(RESULTS, exist_ok=True)
    open(os.path.join(RESULTS, "subgraphs.md"), "w").write("# Representative subgraphs\n\n" + text)
    return text


def main():
    print(write(representative()))


if __name__ == "__main__":
    main()
