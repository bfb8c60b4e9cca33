"""An EfficientNet-style MBConv stack with squeeze-excitation and stochastic depth, weight-normed.

EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks - Tan & Le (2019); MobileNetV2's
inverted residual (Sandler et al., 2018); Squeeze-and-Excitation (Hu et al., 2018); stochastic depth
(Huang et al., 2016).

A 3 x 3 stem of stride 2 and SiLU; MBConv blocks: a 1 x 1 expansion and SiLU, a depthwise 3 x 3 and SiLU, the
squeeze-excitation gate ``h * sigmoid(fc2(SiLU(fc1(mean(h)))))`` (1 x 1 convs), a 1 x 1 projection, and, where
the block keeps its shape, ``x + drop_path(h)`` (each sample's branch dropped with probability p in training,
the identity in eval); a 1 x 1 head conv, SiLU, the global mean and a linear classifier. Batch norm is left
out (weight norm instead). WN: every conv and the classifier: ``2 + 5 * blocks + 1``, 28 at the defaults.

NOTE: stages (16, 2 blocks, stride 1) and (24, 3 blocks, stride 2), expansion 4, SE ratio 0.25, drop rate 0.1
on (2, 3, 32, 32), instead of EfficientNet-B0's seven stages on 224 x 224.
"""
from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

from ._wn import weight_norm_every_layer

INPUT_SHAPE = (2, 3, 32, 32)
EXPECTED_WN_LAYERS = 28


class DropPath(nn.Module):
    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x):
        if not self.training or self.p == 0:
            return x
        keep = 1 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep


class MBConv(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, expand: int = 4, se: float = 0.25, drop: float = 0.1):
        super().__init__()
        hidden, squeezed = c_in * expand, max(1, int(c_in * se))
        self.expand = nn.Conv2d(c_in, hidden, 1)
        self.dw = nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden)
        self.fc1, self.fc2 = nn.Conv2d(hidden, squeezed, 1), nn.Conv2d(squeezed, hidden, 1)
        self.project = nn.Conv2d(hidden, c_out, 1)
        self.residual = stride == 1 and c_in == c_out
        self.drop = DropPath(drop)

    def forward(self, x):
        h = F.silu(self.dw(F.silu(self.expand(x))))
        h = h * torch.sigmoid(self.fc2(F.silu(self.fc1(h.mean((2, 3), keepdim=True)))))
        h = self.project(h)
        return x + self.drop(h) if self.residual else h


class MBConvNet(nn.Module):
    def __init__(self, stages=((16, 2, 1), (24, 3, 2)), num_classes: int = 10):
        super().__init__()
        self.stem = nn.Conv2d(3, stages[0][0], 3, 2, 1)
        blocks, c = [], stages[0][0]
        for width, n, stride in stages:
            for i in range(n):
                blocks.append(MBConv(c, width, stride if i == 0 else 1))
                c = width
        self.blocks = nn.Sequential(*blocks)
        self.head_conv, self.head = nn.Conv2d(c, 64, 1), nn.Linear(64, num_classes)

    def forward(self, x):
        h = self.blocks(F.silu(self.stem(x)))
        return self.head(F.silu(self.head_conv(h)).mean((2, 3)))


def build(api: str = "torch") -> nn.Module:
    """A weight-normed MBConv stack with SE and stochastic depth on 32 x 32 images."""
    return weight_norm_every_layer(MBConvNet(), api)
