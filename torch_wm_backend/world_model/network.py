"""The world model's network, in plain PyTorch (no TVM import: it trains and runs anywhere).

    z0      = E(state features of the unscheduled program)
    z_{t+1} = z_t + f(z_t, a_t)            one step per action token, masked past a trace's end
    score   = H(z_T, mean_t a_t, hardware features)
    dyn(z_t) predicts the pooled PerStoreFeature of the real program after step t.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class WMConfig:
    state_dim: int = 361
    hw_dim: int = 16
    num_kinds: int = 45
    num_attrs: int = 37
    num_feats: int = 24
    dyn_dim: int = 329
    d_act: int = 48
    d_z: int = 96
    d_hidden: int = 128

    def to_dict(self) -> dict:
        return asdict(self)


def _mlp(i: int, h: int, o: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(i, h), nn.GELU(), nn.Linear(h, o))


class WorldModel(nn.Module):
    def __init__(self, cfg: WMConfig):
        super().__init__()
        self.cfg = cfg
        # Input normalisation, fitted on training data by the trainer (identity until then).
        for name, dim in (("state", cfg.state_dim), ("feat", cfg.num_feats), ("hw", cfg.hw_dim),
                          ("dyn", cfg.dyn_dim)):
            self.register_buffer(f"{name}_mean", torch.zeros(dim))
            self.register_buffer(f"{name}_std", torch.ones(dim))
        self.kind_emb = nn.Embedding(cfg.num_kinds, cfg.d_act, padding_idx=0)
        self.attr_emb = nn.Embedding(cfg.num_attrs, cfg.d_act, padding_idx=0)
        self.feat_proj = nn.Linear(cfg.num_feats, cfg.d_act)
        self.act_norm = nn.LayerNorm(cfg.d_act)
        self.encoder = _mlp(cfg.state_dim, cfg.d_hidden, cfg.d_z)
        self.t_z = nn.Linear(cfg.d_z, cfg.d_hidden)
        self.t_a = nn.Linear(cfg.d_act, cfg.d_hidden, bias=False)
        self.t_out = nn.Linear(cfg.d_hidden, cfg.d_z)
        self.z_norm = nn.LayerNorm(cfg.d_z)
        self.head = _mlp(cfg.d_z + cfg.d_act + cfg.hw_dim, cfg.d_hidden, 1)
        self.dyn_head = _mlp(cfg.d_z, cfg.d_hidden, cfg.dyn_dim)
        nn.init.zeros_(self.t_out.weight)   # start as the identity transition
        nn.init.zeros_(self.t_out.bias)

    def _norm(self, x: torch.Tensor, name: str) -> torch.Tensor:
        return (x - getattr(self, f"{name}_mean")) / getattr(self, f"{name}_std")

    def encode(self, state: torch.Tensor) -> torch.Tensor:
        return self.encoder(self._norm(state, "state"))

    def actions(self, kinds, attrs, feats) -> torch.Tensor:
        a = self.kind_emb(kinds) + self.attr_emb(attrs) + self.feat_proj(self._norm(feats, "feat"))
        return torch.nn.functional.gelu(self.act_norm(a))

    def rollout(self, z0: torch.Tensor, acts: torch.Tensor, mask: torch.Tensor, keep: bool = False):
        """z0 [B, d_z], acts [B, L, d_act], mask [B, L] -> z_T [B, d_z] (and all z_t [B, L, d_z])."""
        pre_a = self.t_a(acts)
        z, traj = z0, []
        for t in range(acts.shape[1]):
            dz = self.t_out(torch.nn.functional.gelu(self.t_z(self.z_norm(z)) + pre_a[:, t]))
            z = z + mask[:, t, None] * dz
            if keep:
                traj.append(z)
        return z, (torch.stack(traj, 1) if keep else None)

    def _head_in(self, state, kinds, attrs, feats, mask, hw, keep_traj: bool = False):
        """The score head's input [B, d_z + d_act + hw_dim]: z_T, the mean action, the hardware
        features (and every z_t with ``keep_traj``)."""
        b = kinds.shape[0]
        acts = self.actions(kinds, attrs, feats)
        z_t, traj = self.rollout(self.encode(state).expand(b, -1), acts, mask, keep_traj)
        pooled = (acts * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1)
        return torch.cat([self.z_norm(z_t), pooled, self._norm(hw.expand(b, -1), "hw")], -1), traj

    def hidden(self, state, kinds, attrs, feats, mask, hw) -> torch.Tensor:
        """The score head's hidden layer [B, d_hidden]: what the score is a linear function of."""
        x, _ = self._head_in(state, kinds, attrs, feats, mask, hw)
        return self.head[1](self.head[0](x))

    def forward(self, state, kinds, attrs, feats, mask, hw, keep_traj: bool = False):
        """state [B or 1, S]; kinds/attrs [B, L]; feats [B, L, F]; mask [B, L]; hw [B or 1, H]."""
        x, traj = self._head_in(state, kinds, attrs, feats, mask, hw, keep_traj)
        out = self.head(x).squeeze(-1)
        return (out, traj) if keep_traj else out

    def predict_dynamics(self, traj: torch.Tensor) -> torch.Tensor:
        """Normalised pooled-PerStoreFeature prediction for every z_t."""
        return self.dyn_head(self.z_norm(traj))


class Ensemble(nn.Module):
    """Several world models trained from different seeds; the score is their mean logit. One
    model's rare confident mistake (a slow candidate ranked first) is outvoted by the others.

    A large batch is scored as a cascade: the first member scores every candidate, the others only
    its shortlist (its ``max(min_shortlist, shortlist * n)`` best). The shortlist gets the mean
    logit; the rest keep the first member's order and scale, continued below the shortlist's
    lowest score. Search needs the ensemble's judgement where it picks what to measure, the top;
    one network's order is enough below it, at a fraction of the cost."""

    def __init__(self, members: list[WorldModel], shortlist: float = 1 / 16, min_shortlist: int = 64):
        super().__init__()
        self.members = nn.ModuleList(members)
        self.cfg = members[0].cfg
        self.shortlist, self.min_shortlist = shortlist, min_shortlist

    def forward(self, state, kinds, attrs, feats, mask, hw):
        args = (state, kinds, attrs, feats, mask, hw)
        first = self.members[0](*args)
        n = first.shape[0]
        k = max(self.min_shortlist, math.ceil(self.shortlist * n))
        if self.training or k >= n:
            return torch.stack([first] + [m(*args) for m in self.members[1:]]).mean(0)
        top = torch.topk(first, k).indices
        picked = [x[top] if x.shape[0] == n else x for x in args]   # state, hw may be [1, ...]
        mean = (first[top] + sum(m(*picked) for m in self.members[1:])) / len(self.members)
        out = first + (mean.min() - first[top].min())
        out[top] = mean
        return out


def networks_of(net) -> list:
    """The networks of ``net``: an ensemble's members, or the network itself."""
    return list(net.members) if isinstance(net, Ensemble) else [net]


def collate(tokens: list) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pad a list of tokenized traces (objects with kinds, attrs, feats) to one batch."""
    n = len(tokens)
    length = max((len(t.kinds) for t in tokens), default=1) or 1
    nf = tokens[0].feats.shape[1] if tokens else 1
    kinds = np.zeros((n, length), np.int64)
    attrs = np.zeros((n, length), np.int64)
    feats = np.zeros((n, length, nf), np.float32)
    mask = np.zeros((n, length), np.float32)
    for i, t in enumerate(tokens):
        m = len(t.kinds)
        kinds[i, :m], attrs[i, :m], feats[i, :m], mask[i, :m] = t.kinds, t.attrs, t.feats, 1.0
    return (torch.from_numpy(kinds), torch.from_numpy(attrs), torch.from_numpy(feats),
            torch.from_numpy(mask))


def pairwise_rank_loss(scores: torch.Tensor, labels: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
    """RankNet loss over all pairs within each group, pairs weighted by |label difference|
    (a LambdaRank-like emphasis on pairs that matter). labels: higher is better."""
    same = groups[:, None] == groups[None, :]
    diff = labels[:, None] - labels[None, :]
    pair = same & (diff > 1e-6)
    if not pair.any():
        return scores.sum() * 0.0
    margin = scores[:, None] - scores[None, :]
    w = diff.abs()[pair]
    return (torch.nn.functional.softplus(-margin[pair]) * w).sum() / w.sum()
