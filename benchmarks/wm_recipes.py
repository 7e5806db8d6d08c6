"""One-off experiment: CPU world-model training recipes (loss, dynamics weight, model selection) on
the shipped weights' split; validation and test (evaluation networks) metrics, no baselines.

    python benchmarks/wm_recipes.py   # output kept in results/wm_recipes.txt
"""
import json, pickle, random, sys, time, os
from pathlib import Path
import numpy as np, torch
torch.set_num_threads(1)
sys.path.insert(0, ".")
from torch_wm_backend.world_model import dataset, hardware, trainer
from torch_wm_backend.world_model.adapter import default_config, load_weights
from torch_wm_backend.world_model.network import WorldModel, collate, pairwise_rank_loss
from torch_wm_backend.world_model.collect import cpu_target, load_zoo
root = "benchmarks/work/wm_data"
cache = "benchmarks/work/wm_recipes_groups.pkl"
target = cpu_target()
hw_np = hardware.hardware_features(target); hw = torch.from_numpy(hw_np)[None]
meta = json.load(open("torch_wm_backend/world_model/weights/wm.json"))
if os.path.exists(cache):
    tr, va, te, trans = pickle.load(open(cache, "rb"))
else:
    zoo = load_zoo("benchmarks/zoo.py")
    nets = dataset.networks_in(root)
    tr = dataset.load_groups(root, meta["train_networks"], target)
    va = dataset.load_groups(root, meta["val_networks"], target)
    te = dataset.load_groups(root, [n for n in nets if n in zoo.EVAL], target)
    trans = dataset.load_transitions(root, meta["train_networks"], target)
    pickle.dump((tr, va, te, trans), open(cache, "wb"))
print(len(tr), len(va), len(te), len(trans), flush=True)

def listwise(scores, labels, groups, T=0.1):
    loss, n = 0.0, 0
    for gi in groups.unique():
        m = groups == gi
        tgt = torch.softmax(torch.log(labels[m]) / T, 0)
        loss = loss - (tgt * torch.log_softmax(scores[m], 0)).sum(); n += 1
    return loss / n

def rank_batch(net, groups, kind):
    toks, states, labels, gid = [], [], [], []
    for i, g in enumerate(groups):
        toks += g.tokens; states += [g.state] * len(g.tokens)
        labels.append(g.costs.min() / g.costs); gid += [i] * len(g.tokens)
    kinds, attrs, feats, mask = collate(toks)
    s = net(torch.from_numpy(np.stack(states)), kinds, attrs, feats, mask, hw)
    lab = torch.from_numpy(np.concatenate(labels).astype(np.float32)); gid = torch.tensor(gid)
    if kind == "pair": return pairwise_rank_loss(s, lab, gid)
    if kind == "list": return listwise(s, lab, gid)
    return pairwise_rank_loss(s, lab, gid) + listwise(s, lab, gid)

def run(kind, dyn, steps=400, seed=0, select="pairwise_acc"):
    torch.manual_seed(seed); random.seed(seed)
    net = WorldModel(default_config()); trainer._fit_norm(net, tr, trans, hw_np)
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-4)
    sch = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    best, state = -1, None
    t0 = time.time()
    for step in range(steps):
        net.train(); opt.zero_grad()
        loss = rank_batch(net, random.sample(tr, min(8, len(tr))), kind)
        if dyn: loss = loss + dyn * trainer._dyn_batch(net, random.sample(trans, min(16, len(trans))))
        loss.backward(); torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0); opt.step(); sch.step()
        if (step + 1) % 50 == 0:
            m = dataset.ranking_metrics(va, trainer.score_groups(net, va, hw))
            if m[select] > best: best, state = m[select], {k: v.clone() for k, v in net.state_dict().items()}
    net.load_state_dict(state)
    mv = dataset.ranking_metrics(va, trainer.score_groups(net, va, hw))
    mt = dataset.ranking_metrics(te, trainer.score_groups(net, te, hw))
    print(f"{kind} dyn={dyn} sel={select} seed={seed}: val pw {mv['pairwise_acc']:.3f} top1 {mv['top1']:.3f} | "
          f"test pw {mt['pairwise_acc']:.3f} top1 {mt['top1']:.3f} top5 {mt['top5']:.3f} ({time.time()-t0:.0f}s)", flush=True)
    return net

shipped = load_weights("torch_wm_backend/world_model/weights/wm.pt")
mt = dataset.ranking_metrics(te, trainer.score_groups(shipped, te, hw))
print("shipped test", {k: round(v, 3) for k, v in mt.items() if isinstance(v, float)}, flush=True)
for kind, dyn, sel in [("pair", 0.0, "pairwise_acc"), ("list", 0.0, "top1"), ("both", 0.0, "top1"), ("both", 0.3, "top1")]:
    run(kind, dyn, select=sel)
