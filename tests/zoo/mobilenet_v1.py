"""MobileNetV1: 13 depthwise-separable blocks, BatchNorm removed, weight-normed.

MobileNets: Efficient Convolutional Neural Networks for Mobile Vision Applications - Howard et al. (2017).

A 3x3 stride-2 stem conv -> ReLU; 13 blocks, each a depthwise 3x3 conv (``groups = channels``) -> ReLU ->
pointwise 1x1 conv -> ReLU, with the paper's output channels 64, 128, 128, 256, 256, 512 (x6), 1024, 1024
times the width multiplier and stride 2 at blocks 2, 4, 6 and 12; global average pool and a linear
classifier.
WN: every Conv2d (stem, 13 depthwise, 13 pointwise) and the classifier, 28 layers.

NOTE: BatchNorm removed; the convs get a bias in its place.
NOTE: width multiplier 1/8 (4 to 128 channels) instead of 1; 10 classes; input (2, 3, 64, 64) instead of 224.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from ._wn import weight_norm_every_layer

INPUT_SHAPE = (2, 3, 64, 64)
EXPECTED_WN_LAYERS = 28
# (output channels at width 1, stride of the depthwise conv), the paper's Table 1
BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
          (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1))


class DepthwiseSeparable(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.depthwise = nn.Conv2d(c_in, c_in, 3, stride, 1, groups=c_in)
        self.pointwise = nn.Conv2d(c_in, c_out, 1)

    def forward(self, x):
        return F.relu(self.pointwise(F.relu(self.depthwise(x))))


class MobileNetV1(nn.Module):
    def __init__(self, width_multiplier: float = 0.125, num_classes: int = 10):
        super().__init__()
        c_in = int(32 * width_multiplier)
        self.stem = nn.Conv2d(3, c_in, 3, 2, 1)
        blocks = []
        for c, stride in BLOCKS:
            blocks.append(DepthwiseSeparable(c_in, int(c * width_multiplier), stride))
            c_in = int(c * width_multiplier)
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(c_in, num_classes)

    def forward(self, x):
        return self.fc(self.blocks(F.relu(self.stem(x))).mean((2, 3)))


def build(width_multiplier: float = 0.125, api: str = "torch") -> nn.Module:
    """A weight-normed MobileNetV1 at ``width_multiplier``."""
    return weight_norm_every_layer(MobileNetV1(width_multiplier), api)
