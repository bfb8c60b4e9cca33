"""DenseNet, weight-normed.

Densely Connected Convolutional Networks - Huang et al. (2017).

A 3 x 3 stem; dense blocks whose layers each compute ``ReLU -> 1 x 1 conv (4k) -> ReLU -> 3 x 3 conv (k)`` from
the block's running concatenation and append their ``k`` new channels to it (``x = cat(x, f(x))``); between
blocks a transition ``ReLU -> 1 x 1 conv (compression 0.5) -> 2 x 2 average pool``; ReLU, the global mean and
a linear classifier. Batch norm is left out (weight norm instead). WN: every conv and the classifier:
``1 + 2 * layers + transitions + 1``, 19 at the defaults.

NOTE: two dense blocks of 4 layers each, growth rate k = 8, 16 stem channels on (2, 3, 32, 32), instead of
DenseNet-121's four blocks (6, 12, 24, 16), k = 32, on 224 x 224.
"""
from __future__ import annotations

import torch
from torch import nn

from ._wn import weight_norm_every_layer

INPUT_SHAPE = (2, 3, 32, 32)
EXPECTED_WN_LAYERS = 19


class DenseLayer(nn.Module):
    def __init__(self, c_in: int, growth: int):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(c_in, 4 * growth, 1), nn.Conv2d(4 * growth, growth, 3, padding=1)

    def forward(self, x):
        return torch.cat([x, self.conv2(torch.relu(self.conv1(torch.relu(x))))], 1)


class DenseNet(nn.Module):
    def __init__(self, blocks=(4, 4), growth: int = 8, stem: int = 16, num_classes: int = 10):
        super().__init__()
        layers, c = [nn.Conv2d(3, stem, 3, padding=1)], stem
        for i, n in enumerate(blocks):
            for _ in range(n):
                layers.append(DenseLayer(c, growth))
                c += growth
            if i < len(blocks) - 1:
                layers += [nn.ReLU(), nn.Conv2d(c, c // 2, 1), nn.AvgPool2d(2)]
                c //= 2
        self.features, self.head = nn.Sequential(*layers), nn.Linear(c, num_classes)

    def forward(self, x):
        return self.head(torch.relu(self.features(x)).mean((2, 3)))


def build(api: str = "torch") -> nn.Module:
    """A weight-normed two-block DenseNet on 32 x 32 images."""
    return weight_norm_every_layer(DenseNet(), api)
