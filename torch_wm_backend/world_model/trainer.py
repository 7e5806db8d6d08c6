"""``tvm-wm train``: fit the world model on ``tvm-wm collect``'s data.

Loss = pairwise ranking (labels min_cost/cost within a task) + lambda * dynamics (z_t predicts the
normalised pooled PerStoreFeature of the replayed prefix). Validation networks are held out whole.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import random
import time
from pathlib import Path

import numpy as np
import torch

from . import dataset
from .adapter import WEIGHTS_FILE, default_config, save_weights, seeded, weights_file
from .network import Ensemble, WorldModel, collate, pairwise_rank_loss

log = logging.getLogger(__name__)


def _fit_norm(net: WorldModel, groups, transitions, hw: np.ndarray) -> None:
    def set_(name, rows):
        rows = np.asarray(rows, np.float32)
        mean, std = rows.mean(0), rows.std(0)
        std = np.where(std < 1e-3, 1.0, std)
        getattr(net, f"{name}_mean").copy_(torch.from_numpy(mean))
        getattr(net, f"{name}_std").copy_(torch.from_numpy(std))

    states = [g.state for g in groups] + [t.state for t in transitions]
    set_("state", states)
    feats = np.concatenate([t.feats for g in groups for t in g.tokens][:20000]
                           + [t.tokens.feats for t in transitions][:5000])
    set_("feat", feats)
    getattr(net, "hw_mean").copy_(torch.from_numpy(hw))
    if transitions:
        set_("dyn", np.concatenate([t.feats for t in transitions]))


def score_groups(net: WorldModel, groups, hw: torch.Tensor) -> list:
    out = []
    net.eval()
    with torch.no_grad():
        for g in groups:
            kinds, attrs, feats, mask = collate(g.tokens)
            st = torch.from_numpy(g.state)[None]
            out.append(net(st, kinds, attrs, feats, mask, hw).numpy())
    return out


def default_val_networks(networks: list) -> list:
    """Validation networks, held out whole: every fifth, deterministically."""
    return networks[2::5]


def _rank_batch(net, groups, hw, loss=pairwise_rank_loss):
    toks, states, labels, gid = [], [], [], []
    for i, g in enumerate(groups):
        toks += g.tokens
        states += [g.state] * len(g.tokens)
        labels.append(g.costs.min() / g.costs)
        gid += [i] * len(g.tokens)
    kinds, attrs, feats, mask = collate(toks)
    scores = net(torch.from_numpy(np.stack(states)), kinds, attrs, feats, mask, hw)
    return loss(scores, torch.from_numpy(np.concatenate(labels).astype(np.float32)), torch.tensor(gid))


def _dyn_batch(net, trs):
    kinds, attrs, feats, mask = collate([t.tokens for t in trs])
    st = torch.from_numpy(np.stack([t.state for t in trs]))
    _, traj = net(st, kinds, attrs, feats, mask, net.hw_mean[None], keep_traj=True)
    rows = torch.cat([torch.full((len(t.positions),), i) for i, t in enumerate(trs)])
    cols = torch.from_numpy(np.concatenate([t.positions for t in trs]))
    target = torch.from_numpy(np.concatenate([t.feats for t in trs]))
    target = (target - net.dyn_mean) / net.dyn_std
    return torch.nn.functional.mse_loss(net.predict_dynamics(traj[rows, cols]), target)


def _train_one(groups, val, trans, hw, hw_np, steps, lr, dyn_weight, seed, save, batch=8,
               cfg=None) -> tuple:
    """One network from one seed; the state with the best validation pairwise accuracy is kept
    (and saved through ``save`` whenever it improves, so an interruption loses little). Without
    validation networks (``--val`` given no names: every network trains) the last state is kept."""
    with seeded(seed):
        return _fit(groups, val, trans, hw, hw_np, steps, lr, dyn_weight, seed, save, batch, cfg)


def _fit(groups, val, trans, hw, hw_np, steps, lr, dyn_weight, seed, save, batch, cfg) -> tuple:
    rng = random.Random(seed)
    net = WorldModel(cfg or default_config())
    _fit_norm(net, groups, trans, hw_np)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    best, best_state, history = -1.0, None, []
    for step in range(steps):
        net.train()
        opt.zero_grad()
        loss = _rank_batch(net, rng.sample(groups, min(batch, len(groups))), hw)
        if trans and dyn_weight > 0:
            loss = loss + dyn_weight * _dyn_batch(net, rng.sample(trans, min(16, len(trans))))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        sched.step()
        if not val:
            # no validation networks: the last state is kept (saved now and then)
            if (step + 1) % 250 == 0 or step + 1 == steps:
                history.append({"step": step + 1, "loss": float(loss.detach())})
                log.info("seed %d step %d loss %.4f", seed, step + 1, float(loss.detach()))
                save(net)
            continue
        if (step + 1) % 50 == 0 or step + 1 == steps:
            m = dataset.ranking_metrics(val, score_groups(net, val, hw))
            history.append({"step": step + 1, "loss": float(loss.detach()), **m})
            log.info("seed %d step %d loss %.4f val pairwise %.3f top1 %.3f", seed, step + 1,
                     float(loss.detach()), m["pairwise_acc"], m["top1"])
            if m["pairwise_acc"] > best:
                best, best_state = m["pairwise_acc"], {k: v.clone() for k, v in net.state_dict().items()}
                save(net)
    if best_state is not None:
        net.load_state_dict(best_state)
    return net, best, history


def train(root, out_path=WEIGHTS_FILE, val_networks=None, steps: int = 4000, lr: float = 2e-3,
          dyn_weight: float = 0.3, seed: int = 0, target="cpu", members: int = 1,
          batch: int = 16, dims: tuple[int, int] | None = None, jobs: int = 1) -> dict:
    """Train ``members`` networks from seeds seed, seed+1, ... and save them as one ensemble;
    each step's ranking loss covers ``batch`` tasks; ``dims``: the network's (d_z, d_hidden)
    instead of the default's; ``jobs``: processes training members at once (jobs.py)."""
    import tvm

    from ..errors import TvmWmError
    from . import hardware
    from .collect import parse_target
    from .jobs import train_parts

    if members < 1:
        raise TvmWmError(f"--members must be at least 1, not {members}")
    if batch < 1 or steps < 1:
        raise TvmWmError(f"--batch and --steps must be at least 1, not {batch} and {steps}")
    if jobs < 1:
        raise TvmWmError(f"--jobs must be at least 1, not {jobs}")
    if dims is not None and min(dims) < 1:
        raise TvmWmError(f"--dims must be two positive sizes, not {dims}")
    cfg = network_config(dims)
    if not Path(root).is_dir():
        raise TvmWmError(f"no data folder {root}: run `tvm-wm collect` first, or "
                         f"{dataset.COMMITTED_RECORDS} (then --data there)")
    target = (parse_target(target) if isinstance(target, str) else
              tvm.target.Target(target) if isinstance(target, dict) else target)
    held_out = dataset.eval_networks(root)
    nets = [n for n in dataset.networks_in(root) if n not in held_out]
    n_threads = dataset.check_threads(root, nets)
    if val_networks is None:
        val_networks = default_val_networks(nets)
    unknown = [n for n in val_networks if n not in nets]
    if unknown:
        raise TvmWmError(f"--val {' '.join(unknown)}: not training networks under {root} (they are "
                         f"{', '.join(nets)}; held out for evaluation: {', '.join(sorted(held_out))})")
    train_nets = [n for n in nets if n not in val_networks]
    t0 = time.time()
    hw_np = hardware.hardware_features(target, n_threads if target.kind.name == "llvm" else None)
    hw = torch.from_numpy(hw_np)[None]
    if jobs > 1 and members > 1:
        final, meta = train_parts(out_path, jobs, members, seed, root=root,
                                  val_networks=val_networks, steps=steps, lr=lr,
                                  dyn_weight=dyn_weight, target=json.loads(str(target)),
                                  batch=batch, dims=dims)
        val = dataset.load_groups(root, val_networks, target)
        return _finish(final, meta, val or dataset.load_groups(root, train_nets, target), bool(val),
                       hw, out_path, t0, jobs=jobs)
    groups = dataset.load_groups(root, train_nets, target)
    val = dataset.load_groups(root, val_networks, target)
    trans = dataset.load_transitions(root, train_nets, target)
    log.info("train: %d tasks / %d records from %d networks; %d transitions; val %d tasks (%s)",
             len(groups), sum(len(g.costs) for g in groups), len(train_nets), len(trans), len(val),
             ",".join(val_networks))
    if not groups:
        raise TvmWmError(f"no measured tasks under {root}: run `tvm-wm collect` first")
    done, runs = [], []
    for k in range(members):
        # saved as it improves: the members finished so far plus this one's best state yet
        net, best, history = _train_one(
            groups, val, trans, hw, hw_np, steps, lr, dyn_weight, seed + k,
            lambda m: save_weights(Ensemble(done + [m]) if done else m, out_path, half=True), batch,
            cfg)
        done.append(net)
        runs.append({"seed": seed + k, "best_val_pairwise_acc": best if val else None,
                     "history": history})
    final = Ensemble(done) if len(done) > 1 else done[0]
    save_weights(final, out_path, half=True)
    meta = {"train_networks": train_nets, "val_networks": list(val_networks),
            "train_tasks": len(groups), "train_records": int(sum(len(g.costs) for g in groups)),
            "transitions": len(trans), "steps": steps, "batch": batch, "members": members,
            "runs": runs, "config": final.cfg.to_dict()}
    return _finish(final, meta, val or groups, bool(val), hw, out_path, t0)


def _finish(final, meta: dict, scored: list, validated: bool, hw, out_path, t0: float, **more) -> dict:
    """The trained weights' metadata, written beside them: scored on the validation networks, or
    (with none) on the training records themselves."""
    m = dataset.ranking_metrics(scored, score_groups(final, scored, hw))
    meta.update(more, train_seconds=round(time.time() - t0, 1),
                best_val_pairwise_acc=m["pairwise_acc"] if validated else None)
    meta["val" if validated else "train_fit"] = m
    Path(out_path).with_suffix(".json").write_text(json.dumps(meta, indent=1))
    return meta


def run(args) -> int:
    from .collect import parse_target

    target = parse_target(args.target)
    out = args.out or str(weights_file(target.kind.name))
    meta = train(args.data, out, args.val, args.steps, args.lr, args.dyn_weight, args.seed, target,
                 args.members, args.batch, args.dims, args.jobs)
    if meta["val_networks"]:
        log.info("trained in %.0f s; validation pairwise accuracy of the saved weights %.3f; "
                 "weights in %s", meta["train_seconds"], meta["best_val_pairwise_acc"], out)
    else:
        log.info("trained in %.0f s on every network (none held out for validation); pairwise "
                 "accuracy on the training records %.3f; weights in %s", meta["train_seconds"],
                 meta["train_fit"]["pairwise_acc"], out)
    return 0


def network_config(dims: tuple[int, int] | None = None):
    """The network's config: the default one, or with ``dims`` = (d_z, d_hidden)."""
    cfg = default_config()
    return cfg if dims is None else dataclasses.replace(cfg, d_z=dims[0], d_hidden=dims[1])


def parse_dims(text: str) -> tuple[int, int]:
    """``D_Z:D_HIDDEN`` as two ints."""
    try:
        d_z, d_hidden = (int(x) for x in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: two sizes, D_Z:D_HIDDEN (e.g. 96:128)") from None
    return d_z, d_hidden


def add_parser(subparsers) -> None:
    from .collect import DEFAULT_OUT

    p = subparsers.add_parser("train", help="train the world model on collected databases")
    p.add_argument("--data", default=DEFAULT_OUT)
    p.add_argument("--out", default=None, help="weights file (default: the shipped one for the target's kind)")
    p.add_argument("--target", default="cpu", help="cpu, cuda or cuda:sm_XY: the records' target")
    p.add_argument("--val", nargs="*", default=None,
                   help="validation networks (held out whole; default every fifth); "
                        "--val alone: none, every network trains and the last state is kept")
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--batch", type=int, default=16, help="tasks in each step's ranking loss")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--dyn-weight", type=float, default=0.3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dims", type=parse_dims, default=None, metavar="D_Z:D_HIDDEN",
                   help="the network's latent and hidden sizes (default 96:128)")
    p.add_argument("--members", type=int, default=1,
                   help="networks in the ensemble, trained from seeds seed, seed+1, ...")
    p.add_argument("--jobs", type=int, default=1,
                   help="processes training members at once, each on its share of the cores "
                        "(the same ensemble)")
    p.set_defaults(func=run)
