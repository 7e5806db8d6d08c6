"""The evaluation networks: ResNet-50, MobileNetV2, BERT-base, GPT-2 at batch 1, fp32.

Written out here (torchvision does not install beside this torch); the world model never trains on
them. Random weights: latency and tuning do not depend on the values.
"""
import torch
from torch import nn


def _bn_conv(cin, cout, k, stride=1, groups=1, act=True):
    layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if act:
        layers.append(nn.ReLU6(inplace=True) if act == "relu6" else nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class Bottleneck(nn.Module):
    def __init__(self, cin, mid, stride):
        super().__init__()
        cout = mid * 4
        self.body = nn.Sequential(_bn_conv(cin, mid, 1), _bn_conv(mid, mid, 3, stride),
                                  _bn_conv(mid, cout, 1, act=False))
        self.down = None if stride == 1 and cin == cout else _bn_conv(cin, cout, 1, stride, act=False)

    def forward(self, x):
        return torch.relu(self.body(x) + (x if self.down is None else self.down(x)))


def resnet50(num_classes=1000):
    layers, cin = [_bn_conv(3, 64, 7, 2), nn.MaxPool2d(3, 2, 1)], 64
    for mid, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
        for i in range(blocks):
            layers.append(Bottleneck(cin, mid, stride if i == 0 else 1))
            cin = mid * 4
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, num_classes)]
    return nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride, expand):
        super().__init__()
        mid = cin * expand
        layers = [] if expand == 1 else [_bn_conv(cin, mid, 1, act="relu6")]
        layers += [_bn_conv(mid, mid, 3, stride, groups=mid, act="relu6"), _bn_conv(mid, cout, 1, act=False)]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.body(x) if self.residual else self.body(x)


def mobilenet_v2(num_classes=1000):
    layers, cin = [_bn_conv(3, 32, 3, 2, act="relu6")], 32
    for expand, cout, n, stride in ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                                    (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)):
        for i in range(n):
            layers.append(InvertedResidual(cin, cout, stride if i == 0 else 1, expand))
            cin = cout
    layers += [_bn_conv(cin, 1280, 1, act="relu6"), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
               nn.Linear(1280, num_classes)]
    return nn.Sequential(*layers)


def bert_base():
    from transformers import BertConfig, BertModel

    return BertModel(BertConfig(attn_implementation="eager"))


def gpt2():
    from transformers import GPT2Config, GPT2Model

    # no KV-cache object among its outputs: torch.export traces tensors only
    return GPT2Model(GPT2Config(attn_implementation="eager", use_cache=False))


def image(batch=1):
    return torch.randn(batch, 3, 224, 224)


def tokens(batch=1, seq=128, vocab=30522):
    return torch.randint(0, vocab, (batch, seq))


# name -> (builder, example-input builder)
MODELS = {
    "resnet50": (resnet50, image),
    "mobilenet_v2": (mobilenet_v2, image),
    "bert_base": (bert_base, tokens),
    "gpt2": (gpt2, lambda: tokens(vocab=50257)),
}
