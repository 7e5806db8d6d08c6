"""Experiment: CPU world-model training recipes (loss, dynamics weight, steps, model selection) on the
trainer's own split (validation networks held out whole, as `tvm-wm train` does); validation and test
(evaluation networks) metrics, no baselines. Prints one line per recipe.

    python benchmarks/wm_recipes.py [--data DIR] [--recipes pair:0.3:400:pairwise_acc ...]

A recipe is loss:dynamics-weight:steps:selection-metric; losses: pair (RankNet, the trainer's),
list (softmax listwise), both (pair + list), reg (regress min/cost, like MetaSchedule's XGB),
pair+reg, distill (pairwise + MSE to the shipped ensemble's logits: one network in its place).
--dims d_z:d_hidden sizes the network (smaller members cost less to evaluate); --batch is the tasks
in each step's ranking loss.
"""
import argparse
import pickle
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, ".")
from torch_wm_backend.world_model import dataset, hardware, trainer  # noqa: E402
from torch_wm_backend.world_model.blend import Scale  # noqa: E402
from torch_wm_backend.world_model.collect import cpu_target  # noqa: E402
from torch_wm_backend.world_model.network import WorldModel, pairwise_rank_loss  # noqa: E402
from torch_wm_backend.world_model.tokenizer import vocab  # noqa: E402


def listwise(scores, labels, groups, T=0.1):
    loss, n = 0.0, 0
    for gi in groups.unique():
        m = groups == gi
        tgt = torch.softmax(torch.log(labels[m]) / T, 0)
        loss = loss - (tgt * torch.log_softmax(scores[m], 0)).sum()
        n += 1
    return loss / n


def recipe_loss(kind):
    """The ranking loss of a recipe: (scores, labels min/cost, task ids) -> loss."""
    losses = {"pair": pairwise_rank_loss, "list": listwise,
              "reg": lambda s, lab, gid: 10 * torch.nn.functional.mse_loss(torch.sigmoid(s), lab)}
    parts = {"both": ("pair", "list")}.get(kind, kind.split("+"))
    return lambda s, lab, gid: sum(losses[p](s, lab, gid) for p in parts)


_TEACHER = {}


def distill_loss(batch, hw):
    """Pairwise loss plus MSE to the shipped ensemble's logits for the batch's candidates (same
    order as _rank_batch): one forward pass of the student."""
    if "net" not in _TEACHER:
        from torch_wm_backend.world_model.adapter import load_weights
        _TEACHER["net"] = load_weights("torch_wm_backend/world_model/weights/wm.pt").eval()
    with torch.no_grad():
        want = torch.from_numpy(np.concatenate(trainer.score_groups(_TEACHER["net"], batch, hw)))
    return lambda s, lab, gid: pairwise_rank_loss(s, lab, gid) + torch.nn.functional.mse_loss(s, want)


def run(data, kind, dyn, steps, select, seed, hw, hw_np, dims=None, batch=8):
    tr, va, te, trans = data
    torch.manual_seed(seed)
    random.seed(seed)
    net = WorldModel(trainer.network_config(trainer.parse_dims(dims) if dims else None))
    trainer._fit_norm(net, tr, trans, hw_np)
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-4)
    sch = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    best, state = -1, None
    t0 = time.time()
    for step in range(steps):
        net.train()
        opt.zero_grad()
        picked = random.sample(tr, min(batch, len(tr)))
        loss = trainer._rank_batch(net, picked, hw, distill_loss(picked, hw) if kind == "distill"
                                   else recipe_loss(kind))
        if dyn:
            loss = loss + dyn * trainer._dyn_batch(net, random.sample(trans, min(16, len(trans))))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        sch.step()
        if (step + 1) % 50 == 0:
            m = dataset.ranking_metrics(va, trainer.score_groups(net, va, hw))
            if m[select] > best:
                best, state = m[select], {k: v.clone() for k, v in net.state_dict().items()}
    net.load_state_dict(state)
    sv, st = trainer.score_groups(net, va, hw), trainer.score_groups(net, te, hw)
    report(f"{kind} dyn={dyn} steps={steps} batch={batch} sel={select} seed={seed}"
           + (f" dims={dims}" if dims else ""), va, te, sv, st,
           f"({time.time() - t0:.0f}s)")
    return sv, st


def report(name, va, te, sv, st, extra=""):
    mv, mt = dataset.ranking_metrics(va, sv), dataset.ranking_metrics(te, st)
    print(f"{name}: val pw {mv['pairwise_acc']:.3f} top1 {mv['top1']:.3f} | test pw "
          f"{mt['pairwise_acc']:.3f} top1 {mt['top1']:.3f} top5 {mt['top5']:.3f} {extra}", flush=True)


def mean_of(runs):
    """Each task's scores averaged over the runs after standardising them per task."""
    z = lambda s: Scale.of(s)(s)
    return [sum(z(r[i]) for r in runs) / len(runs) for i in range(len(runs[0]))]


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", default="benchmarks/work/wm_data")
    ap.add_argument("--recipes", nargs="*", default=["pair:0.3:400:pairwise_acc"])
    ap.add_argument("--seeds", type=int, nargs="*", default=[0])
    ap.add_argument("--dims", help="d_z:d_hidden of the network (default: the trainer's, 96:128)")
    ap.add_argument("--batch", type=int, default=8, help="tasks per step's ranking loss")
    args = ap.parse_args()
    torch.set_num_threads(1)
    target = cpu_target()
    hw_np = hardware.hardware_features(target, dataset.check_threads(args.data, dataset.networks_in(args.data)))
    hw = torch.from_numpy(hw_np)[None]
    size = sum(f.stat().st_size for f in Path(args.data).glob("*/database_tuning_record.json"))
    # new data or new tokens: a new file
    cache = Path("benchmarks/work") / f"wm_recipes_{Path(args.data).name}_{size}_t{vocab.VERSION}.pkl"
    if cache.exists():
        data = pickle.load(open(cache, "rb"))
    else:
        held_out = dataset.eval_networks(args.data)
        nets = [n for n in dataset.networks_in(args.data) if n not in held_out]
        val_nets = trainer.default_val_networks(nets)
        train_nets = [n for n in nets if n not in val_nets]
        data = (dataset.load_groups(args.data, train_nets, target),
                dataset.load_groups(args.data, val_nets, target),
                dataset.load_groups(args.data, [n for n in dataset.networks_in(args.data)
                                                if n in held_out], target),
                dataset.load_transitions(args.data, train_nets, target))
        pickle.dump(data, open(cache, "wb"))
    tr, va, te, trans = data
    print(f"train {len(tr)} tasks / {sum(len(g.costs) for g in tr)} records, val {len(va)} tasks, "
          f"test {len(te)} tasks / {sum(len(g.costs) for g in te)} records, {len(trans)} transitions",
          flush=True)
    for recipe in args.recipes:
        kind, dyn, steps, select = recipe.split(":")
        runs = [run(data, kind, float(dyn), int(steps), select, seed, hw, hw_np, args.dims, args.batch)
                for seed in args.seeds]
        if len(runs) > 1:
            report(f"{recipe} mean of seeds {args.seeds}" + (f" dims={args.dims}" if args.dims else ""), va, te, mean_of([r[0] for r in runs]),
                   mean_of([r[1] for r in runs]))


if __name__ == "__main__":
    main()
