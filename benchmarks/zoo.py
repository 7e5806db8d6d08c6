"""Networks for the world model's data: a training zoo and the held-out evaluation networks.

Plain PyTorch (no downloads, no torchvision). Each entry builds (model, example inputs).
EVALUATION networks are never trained on: tasks whose workload also occurs in them are dropped from
the training data.
"""
from __future__ import annotations

import os
import sys

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # loaded by path (tvm-wm collect)
from eval_models import MODELS as EVAL_MODELS  # noqa: E402


def _cbr(cin, cout, k=3, s=1, groups=1, act=True):
    layers = [nn.Conv2d(cin, cout, k, s, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    return nn.Sequential(*layers, nn.ReLU()) if act else nn.Sequential(*layers)


class Basic(nn.Module):
    expansion = 1

    def __init__(self, cin, c, s):
        super().__init__()
        self.f = nn.Sequential(_cbr(cin, c, 3, s), _cbr(c, c, 3, 1, act=False))
        self.sc = _cbr(cin, c, 1, s, act=False) if s != 1 or cin != c else nn.Identity()

    def forward(self, x):
        return torch.relu(self.f(x) + self.sc(x))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin, c, s):
        super().__init__()
        self.f = nn.Sequential(_cbr(cin, c, 1), _cbr(c, c, 3, s), _cbr(c, c * 4, 1, act=False))
        self.sc = _cbr(cin, c * 4, 1, s, act=False) if s != 1 or cin != c * 4 else nn.Identity()

    def forward(self, x):
        return torch.relu(self.f(x) + self.sc(x))


def resnet(block, layers, width=64, classes=1000):
    mods, cin = [_cbr(3, width, 7, 2), nn.MaxPool2d(3, 2, 1)], width
    for i, n in enumerate(layers):
        for j in range(n):
            mods.append(block(cin, width * 2 ** i, 2 if (j == 0 and i > 0) else 1))
            cin = width * 2 ** i * block.expansion
    return nn.Sequential(*mods, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, classes))


def vgg11(classes=1000):
    cfg, mods, cin = [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"], [], 3
    for v in cfg:
        if v == "M":
            mods.append(nn.MaxPool2d(2))
        else:
            mods += [nn.Conv2d(cin, v, 3, padding=1), nn.ReLU()]
            cin = v
    return nn.Sequential(*mods, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, classes))


class Fire(nn.Module):
    def __init__(self, cin, s, e):
        super().__init__()
        self.s, self.e1, self.e3 = _cbr(cin, s, 1), _cbr(s, e, 1), _cbr(s, e, 3)

    def forward(self, x):
        x = self.s(x)
        return torch.cat([self.e1(x), self.e3(x)], 1)


def squeezenet(classes=1000):
    return nn.Sequential(_cbr(3, 64, 3, 2), nn.MaxPool2d(3, 2), Fire(64, 16, 64), Fire(128, 16, 64),
                         nn.MaxPool2d(3, 2), Fire(128, 32, 128), Fire(256, 48, 192),
                         nn.Conv2d(384, classes, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten())


class InvRes(nn.Module):
    def __init__(self, cin, cout, s, t, se=False):
        super().__init__()
        h = cin * t
        mods = [_cbr(cin, h, 1)] if t != 1 else []
        mods += [_cbr(h, h, 3, s, groups=h)]
        self.se = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(h, max(h // 4, 8), 1), nn.ReLU(),
                                nn.Conv2d(max(h // 4, 8), h, 1), nn.Sigmoid()) if se else None
        self.body, self.proj = nn.Sequential(*mods), _cbr(h, cout, 1, act=False)
        self.res = s == 1 and cin == cout

    def forward(self, x):
        y = self.body(x)
        if self.se is not None:
            y = y * self.se(y)
        y = self.proj(y)
        return x + y if self.res else y


def mobilenet_v2(classes=1000, width=1.0, se=False):
    cfg = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
           (6, 320, 1, 1)]
    cin = int(32 * width)
    mods = [_cbr(3, cin, 3, 2)]
    for t, c, n, s in cfg:
        c = int(c * width)
        for i in range(n):
            mods.append(InvRes(cin, c, s if i == 0 else 1, t, se))
            cin = c
    return nn.Sequential(*mods, _cbr(cin, 1280, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(1280, classes))


def efficient_like(classes=1000):
    return mobilenet_v2(classes, width=0.75, se=True)


class Shuffle(nn.Module):
    def __init__(self, c):
        super().__init__()
        h = c // 2
        self.b = nn.Sequential(_cbr(h, h, 1), _cbr(h, h, 3, groups=h, act=False), _cbr(h, h, 1))

    def forward(self, x):
        a, b = x.chunk(2, 1)
        y = torch.cat([a, self.b(b)], 1)
        n, c, hh, ww = y.shape
        return y.reshape(n, 2, c // 2, hh, ww).transpose(1, 2).reshape(n, c, hh, ww)


def shufflenet_like(classes=1000):
    return nn.Sequential(_cbr(3, 116, 3, 4), Shuffle(116), Shuffle(116), _cbr(116, 232, 3, 2),
                         Shuffle(232), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(232, classes))


class Dense(nn.Module):
    def __init__(self, cin, g):
        super().__init__()
        self.f = nn.Sequential(_cbr(cin, 4 * g, 1), _cbr(4 * g, g, 3))

    def forward(self, x):
        return torch.cat([x, self.f(x)], 1)


def densenet_small(classes=1000, g=24):
    mods, c = [_cbr(3, 48, 3, 2)], 48
    for _ in range(4):
        mods.append(Dense(c, g))
        c += g
    return nn.Sequential(*mods, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, classes))


class Block(nn.Module):
    """Pre-LN transformer block (BERT uses post-LN; the kernels are the same shapes)."""

    def __init__(self, d, heads, causal=False, mlp=4):
        super().__init__()
        self.h, self.causal = heads, causal
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.o = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.mlp = nn.Sequential(nn.Linear(d, mlp * d), nn.GELU(), nn.Linear(mlp * d, d))

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).reshape(b, t, 3, self.h, d // self.h).permute(2, 0, 3, 1, 4)
        att = (q @ k.transpose(-1, -2)) * (d // self.h) ** -0.5
        if self.causal:
            att = att + torch.triu(torch.full((t, t), -1e4), 1)
        y = (att.softmax(-1) @ v).transpose(1, 2).reshape(b, t, d)
        x = x + self.o(y)
        return x + self.mlp(self.ln2(x))


class Transformer(nn.Module):
    def __init__(self, d, layers, heads, vocab=None, causal=False, patch=None):
        super().__init__()
        self.embed = nn.Embedding(vocab, d) if vocab else None
        self.patch = nn.Conv2d(3, d, patch, patch) if patch else None
        self.blocks = nn.Sequential(*[Block(d, heads, causal) for _ in range(layers)])
        self.ln = nn.LayerNorm(d)

    def forward(self, x):
        if self.embed is not None:
            x = self.embed(x)
        elif self.patch is not None:
            x = self.patch(x).flatten(2).transpose(1, 2)
        return self.ln(self.blocks(x))


class MixerBlock(nn.Module):
    def __init__(self, tokens, d):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.tok = nn.Sequential(nn.Linear(tokens, tokens * 2), nn.GELU(), nn.Linear(tokens * 2, tokens))
        self.ch = nn.Sequential(nn.Linear(d, d * 4), nn.GELU(), nn.Linear(d * 4, d))

    def forward(self, x):
        x = x + self.tok(self.ln1(x).transpose(1, 2)).transpose(1, 2)
        return x + self.ch(self.ln2(x))


def mixer(d=256, layers=2, patch=16, res=160):
    tokens = (res // patch) ** 2
    return nn.Sequential(nn.Conv2d(3, d, patch, patch), nn.Flatten(2), _T(),
                         *[MixerBlock(tokens, d) for _ in range(layers)], nn.LayerNorm(d))


class _T(nn.Module):
    def forward(self, x):
        return x.transpose(1, 2)


def _img(b, r):
    return (torch.randn(b, 3, r, r),)


def _ids(b, t):
    return (torch.randint(0, 1000, (b, t)),)


# name -> (builder, inputs builder). Training nets use other sizes than the evaluation nets.
TRAIN = {}  # interleaved kinds so that a partial collection covers CNNs and transformers
for _b in (1, 2, 4):
    TRAIN.update({
        f"resnet18_b{_b}": (lambda: resnet(Basic, [2, 2, 2, 2]), lambda b=_b: _img(b, 160)),
        f"resnet34_b{_b}": (lambda: resnet(Basic, [3, 4, 6, 3]), lambda b=_b: _img(b, 128)),
        f"vgg11_b{_b}": (vgg11, lambda b=_b: _img(b, 128)),
        f"squeezenet_b{_b}": (squeezenet, lambda b=_b: _img(b, 160)),
        f"densenet_small_b{_b}": (densenet_small, lambda b=_b: _img(b, 112)),
        f"shufflenet_like_b{_b}": (shufflenet_like, lambda b=_b: _img(b, 160)),
        f"efficient_like_b{_b}": (efficient_like, lambda b=_b: _img(b, 128)),
        f"mixer_b{_b}": (mixer, lambda b=_b: _img(b, 160)),
        f"vit_small_b{_b}": (lambda: Transformer(384, 2, 6, patch=16), lambda b=_b: _img(b, 160)),
        f"bert_mini_b{_b}": (lambda: Transformer(256, 2, 4, vocab=1000), lambda b=_b: _ids(b, 64)),
        f"bert_medium_b{_b}": (lambda: Transformer(512, 2, 8, vocab=1000), lambda b=_b: _ids(b, 96)),
        f"gpt_mini_b{_b}": (lambda: Transformer(256, 2, 4, vocab=1000, causal=True),
                            lambda b=_b: _ids(b, 64)),
        f"gpt_medium_b{_b}": (lambda: Transformer(640, 2, 10, vocab=1000, causal=True),
                              lambda b=_b: _ids(b, 48)),
    })

_ORDER = ("resnet18", "gpt_mini", "bert_mini", "squeezenet", "vit_small", "mobilenet", "efficient_like",
          "mixer", "resnet34", "gpt_medium", "bert_medium", "densenet_small", "shufflenet_like", "vgg11")
TRAIN = {k: TRAIN[k] for k in sorted(TRAIN, key=lambda k: (k[-1], [o in k for o in _ORDER].index(True)))}

# The evaluation networks are the very models benchmarks/e2e.py times (eval_models.py), held out of
# training whole, their workloads too.
EVAL = {name: (make, lambda example=example: (example(),)) for name, (make, example) in EVAL_MODELS.items()}


def build(name: str):
    make, inputs = {**TRAIN, **EVAL}[name]
    torch.manual_seed(0)
    return make().eval(), inputs()
