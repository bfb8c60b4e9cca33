"""A ResNeXt stack of bottleneck blocks with grouped 3x3 convs (cardinality 8), weight-normed.

Aggregated Residual Transformations for Deep Neural Networks - Xie et al. (2017).

CIFAR layout (ResNeXt-29): a 3x3 stem conv, 3 stages of 3 blocks (stride 2 at the first block of stages
2 and 3); each block ``relu(x + conv1x1(relu(gconv3x3(relu(conv1x1(x))))))`` with the 3x3 in 8 groups
(the paper's form (c)), the stride on the 3x3, a 1x1 projection shortcut where the shape changes; global
average pool and a linear classifier. The inner width is twice the block output, as in ResNeXt-29.
WN: every Conv2d (stem, 27 block convs, 3 projections) and the classifier, 32 layers.

NOTE: BatchNorm removed; the convs get a bias in its place.
NOTE: block outputs ``width * (1, 2, 4)`` with ``width=32`` (4 to 16 channels per group) instead of
256 to 1024; input (2, 3, 16, 16) instead of 32 x 32.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from ._wn import weight_norm_every_layer

INPUT_SHAPE = (2, 3, 16, 16)
EXPECTED_WN_LAYERS = 32


class ResNeXtBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, groups: int):
        super().__init__()
        inner = 2 * c_out
        self.conv_reduce = nn.Conv2d(c_in, inner, 1)
        self.conv_grouped = nn.Conv2d(inner, inner, 3, stride, 1, groups=groups)
        self.conv_expand = nn.Conv2d(inner, c_out, 1)
        changed = stride != 1 or c_in != c_out
        self.shortcut = nn.Conv2d(c_in, c_out, 1, stride) if changed else None

    def forward(self, x):
        out = self.conv_expand(F.relu(self.conv_grouped(F.relu(self.conv_reduce(x)))))
        return F.relu(out + (x if self.shortcut is None else self.shortcut(x)))


class ResNeXt(nn.Module):
    def __init__(self, width: int = 32, groups: int = 8, blocks_per_stage: int = 3, num_classes: int = 10):
        super().__init__()
        self.stem = nn.Conv2d(3, width // 2, 3, 1, 1)
        stages, c_in = [], width // 2
        for k in range(3):
            c_out = width * 2 ** k
            stages.append(nn.Sequential(*[
                ResNeXtBlock(c_in if i == 0 else c_out, c_out, 2 if (k > 0 and i == 0) else 1, groups)
                for i in range(blocks_per_stage)]))
            c_in = c_out
        self.stages = nn.Sequential(*stages)
        self.fc = nn.Linear(c_in, num_classes)

    def forward(self, x):
        return self.fc(self.stages(F.relu(self.stem(x))).mean((2, 3)))


def build(width: int = 32, groups: int = 8, blocks_per_stage: int = 3, api: str = "torch") -> nn.Module:
    """A weight-normed ResNeXt of 3 stages x ``blocks_per_stage`` blocks, 3x3 convs in ``groups`` groups."""
    return weight_norm_every_layer(ResNeXt(width, groups, blocks_per_stage), api)
