"""A WaveNet stack of gated, causal, dilated convolutions, weight-normed.

WaveNet: A Generative Model for Raw Audio - van den Oord et al. (2016).

A causal conv (k2) from the input to the residual channels; ``stacks`` repeats of layers with dilations
1, 2, 4, ..., 512, each ``z = tanh(W_f * x) * sigmoid(W_g * x)`` (causal k2 convs, left-padded by the
dilation), a 1x1 residual conv added to ``x`` and a 1x1 skip conv; the skips summed -> ReLU -> 1x1 ->
ReLU -> 1x1 to the output logits.
WN: every Conv1d (input conv, per layer the filter, gate, residual and skip convs, the 2 output convs):
``1 + 4 * 10 * stacks - 1 + 2`` layers, 82 at ``stacks=2`` (the last layer has no residual conv: its
sum would feed nothing).

NOTE: 16 residual and skip channels and 32 output classes instead of 256 mu-law classes; the input is one
real-valued channel (1 x 256 samples, batch 2) instead of one-hot mu-law samples.
NOTE: no conditioning (local or global); the filter and gate are two convs, as written in the paper.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._wn import weight_norm_every_layer

INPUT_SHAPE = (2, 1, 256)
EXPECTED_WN_LAYERS = 82


class CausalConv1d(nn.Conv1d):
    """A k-tap conv that sees only the present and the past: left padding of ``dilation * (k - 1)``."""

    def forward(self, x):
        return super().forward(F.pad(x, (self.dilation[0] * (self.kernel_size[0] - 1), 0)))


class GatedResidualLayer(nn.Module):
    def __init__(self, channels: int, skip_channels: int, dilation: int, last: bool = False):
        super().__init__()
        self.filter = CausalConv1d(channels, channels, 2, dilation=dilation)
        self.gate = CausalConv1d(channels, channels, 2, dilation=dilation)
        self.residual = None if last else nn.Conv1d(channels, channels, 1)
        self.skip = nn.Conv1d(channels, skip_channels, 1)

    def forward(self, x):
        z = torch.tanh(self.filter(x)) * torch.sigmoid(self.gate(x))
        return (x if self.residual is None else x + self.residual(z)), self.skip(z)


class WaveNet(nn.Module):
    def __init__(self, in_channels: int = 1, channels: int = 16, skip_channels: int = 16, classes: int = 32,
                 stacks: int = 2, layers_per_stack: int = 10):
        super().__init__()
        self.causal = CausalConv1d(in_channels, channels, 2)
        n = stacks * layers_per_stack
        self.layers = nn.ModuleList(GatedResidualLayer(channels, skip_channels, 2 ** (j % layers_per_stack),
                                                       last=j == n - 1) for j in range(n))
        self.out1 = nn.Conv1d(skip_channels, skip_channels, 1)
        self.out2 = nn.Conv1d(skip_channels, classes, 1)

    def forward(self, x):
        x, skips = self.causal(x), 0
        for layer in self.layers:
            x, skip = layer(x)
            skips = skips + skip
        return self.out2(F.relu(self.out1(F.relu(skips))))


def build(channels: int = 16, stacks: int = 2, api: str = "torch") -> nn.Module:
    """A weight-normed WaveNet of ``stacks`` x 10 layers (dilations 1 to 512)."""
    return weight_norm_every_layer(WaveNet(channels=channels, stacks=stacks), api)
