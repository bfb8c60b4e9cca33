"""A deep IMPALA-CNN, weight-normed.

IMPALA: Scalable Distributed Deep-RL with Importance Weighted Actor-Learner Architectures - Espeholt et al. (2018).

3 stages of 3x3 conv -> 3x3 max pool stride 2 -> ``blocks_per_stage`` residual blocks
``x + conv(relu(conv(relu(x))))`` (pre-activation, no ReLU after the sum); then ReLU -> flatten ->
linear (256) -> ReLU. Channels 16, 32, 32 as in the paper.
WN: every Conv2d (3 stage convs, 2 per block) and the linear layer: ``3 + 6 * blocks_per_stage + 1``, 52
at ``blocks_per_stage=8``.

NOTE: ``blocks_per_stage=8`` instead of 2, to make it deep.
NOTE: only the CNN torso: no LSTM, policy or value heads; the output is the 256 ReLU features.
NOTE: input (2, 3, 64, 64) (the Procgen size) instead of 96 x 72.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from ._wn import weight_norm_every_layer

INPUT_SHAPE = (2, 3, 64, 64)
EXPECTED_WN_LAYERS = 52


class ResidualBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv0 = nn.Conv2d(channels, channels, 3, 1, 1)
        self.conv1 = nn.Conv2d(channels, channels, 3, 1, 1)

    def forward(self, x):
        return x + self.conv1(F.relu(self.conv0(F.relu(x))))


class ImpalaCNN(nn.Module):
    def __init__(self, in_channels: int = 3, channels=(16, 32, 32), blocks_per_stage: int = 8,
                 hidden: int = 256, input_hw: int = 64):
        super().__init__()
        stages, c_in, hw = [], in_channels, input_hw
        for c in channels:
            stages += [nn.Conv2d(c_in, c, 3, 1, 1), nn.MaxPool2d(3, 2, 1)]
            stages += [ResidualBlock(c) for _ in range(blocks_per_stage)]
            c_in, hw = c, (hw + 1) // 2
        self.stages = nn.Sequential(*stages)
        self.fc = nn.Linear(c_in * hw * hw, hidden)

    def forward(self, x):
        return F.relu(self.fc(F.relu(self.stages(x)).flatten(1)))


def build(blocks_per_stage: int = 8, api: str = "torch") -> nn.Module:
    """A weight-normed IMPALA-CNN with ``blocks_per_stage`` residual blocks in each of its 3 stages."""
    return weight_norm_every_layer(ImpalaCNN(blocks_per_stage=blocks_per_stage), api)
