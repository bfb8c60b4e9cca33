"""ResNet-50 in torchvision's layout, BatchNorm removed, weight-normed.

Deep Residual Learning for Image Recognition - He et al. (2016).

Bottleneck blocks 3-4-6-3 (1x1 -> 3x3 -> 1x1, expansion 4, the stride on the 3x3 as torchvision does),
a 1x1 projection shortcut where the shape changes, ReLU after the residual sum; stem 7x7 stride 2 and
3x3 max pool stride 2; global average pool and a linear classifier.
WN: every Conv2d (stem, 48 block convs, 4 projections) and the classifier, 54 layers.

NOTE: BatchNorm removed (the paper's use case: BN out, weight norm in); the convs get a bias in its place.
NOTE: widths are ``width * (1, 2, 4, 8)`` with ``width=8`` by default instead of 64; 10 classes, not 1000.
NOTE: the input is (2, 3, 64, 64) instead of 224 x 224.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from ._wn import weight_norm_every_layer

INPUT_SHAPE = (2, 3, 64, 64)
EXPECTED_WN_LAYERS = 54


class Bottleneck(nn.Module):
    def __init__(self, c_in: int, planes: int, stride: int):
        super().__init__()
        c_out = 4 * planes
        self.conv1 = nn.Conv2d(c_in, planes, 1)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1)
        self.conv3 = nn.Conv2d(planes, c_out, 1)
        changed = stride != 1 or c_in != c_out
        self.downsample = nn.Conv2d(c_in, c_out, 1, stride) if changed else None

    def forward(self, x):
        out = self.conv3(F.relu(self.conv2(F.relu(self.conv1(x)))))
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.relu(out + shortcut)


class ResNet50(nn.Module):
    def __init__(self, width: int = 8, num_classes: int = 10, blocks=(3, 4, 6, 3)):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 7, 2, 3)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        layers, c_in = [], width
        for k, n in enumerate(blocks):
            planes = width * 2 ** k
            stage = [Bottleneck(c_in if i == 0 else 4 * planes, planes, 2 if (k > 0 and i == 0) else 1)
                     for i in range(n)]
            layers.append(nn.Sequential(*stage))
            c_in = 4 * planes
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.fc = nn.Linear(c_in, num_classes)

    def forward(self, x):
        x = self.maxpool(F.relu(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(x.mean((2, 3)))


def build(width: int = 8, num_classes: int = 10, api: str = "torch") -> nn.Module:
    """A weight-normed, BN-free ResNet-50 of base width ``width``."""
    return weight_norm_every_layer(ResNet50(width, num_classes), api)
