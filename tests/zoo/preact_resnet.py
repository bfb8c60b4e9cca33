"""A 51-block pre-activation ResNet, BatchNorm removed, weight-normed.

Identity Mappings in Deep Residual Networks - He et al. (2016).

CIFAR layout: a 3x3 stem conv, 3 stages of 17 basic blocks (stride 2 at the first block of stages 2
and 3), each block ``x + conv2(relu(conv1(relu(x))))`` with no ReLU after the sum; where the shape
changes the shortcut is a 1x1 projection of the pre-activated input ``relu(x)``, as in the paper's
full pre-activation unit. A final ReLU, global average pool and linear classifier.
WN: every Conv2d (stem, 102 block convs, 2 projections) and the classifier, 106 layers.

NOTE: BatchNorm removed (each "BN -> ReLU" is a ReLU); the convs get a bias in its place.
NOTE: widths ``width * (1, 2, 4)`` with ``width=8`` instead of 16; input (2, 3, 16, 16) instead of 32 x 32.
NOTE: 17 blocks per stage (ResNet-104 depth) to have at least 50 blocks; the paper's CIFAR nets use 18 or 111.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from ._wn import weight_norm_every_layer

INPUT_SHAPE = (2, 3, 16, 16)
EXPECTED_WN_LAYERS = 106


class PreActBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1)
        changed = stride != 1 or c_in != c_out
        self.shortcut = nn.Conv2d(c_in, c_out, 1, stride) if changed else None

    def forward(self, x):
        pre = F.relu(x)
        out = self.conv2(F.relu(self.conv1(pre)))
        return out + (x if self.shortcut is None else self.shortcut(pre))


class PreActResNet(nn.Module):
    def __init__(self, width: int = 8, blocks_per_stage: int = 17, num_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, 1, 1)
        stages, c_in = [], width
        for k in range(3):
            c_out = width * 2 ** k
            stages.append(nn.Sequential(*[
                PreActBlock(c_in if i == 0 else c_out, c_out, 2 if (k > 0 and i == 0) else 1)
                for i in range(blocks_per_stage)]))
            c_in = c_out
        self.stages = nn.Sequential(*stages)
        self.fc = nn.Linear(c_in, num_classes)

    def forward(self, x):
        x = self.stages(self.conv1(x))
        return self.fc(F.relu(x).mean((2, 3)))


def build(width: int = 8, blocks_per_stage: int = 17, num_classes: int = 10, api: str = "torch") -> nn.Module:
    """A weight-normed, BN-free pre-activation ResNet of ``3 * blocks_per_stage`` basic blocks."""
    return weight_norm_every_layer(PreActResNet(width, blocks_per_stage, num_classes), api)
