"""The HiFi-GAN V1 generator, small channels, with the legacy weight norm of the original.

HiFi-GAN: Generative Adversarial Networks for Efficient and High Fidelity Speech Synthesis - Kong et al. (2020).

``conv_pre`` (k7) on the mel; 4 upsampling stages, each leaky ReLU(0.1) -> ConvTranspose1d (rates
8, 8, 2, 2; kernels 16, 16, 4, 4; channels halved) -> MRF: the mean of 3 ResBlock1's (kernels 3, 7, 11),
each 3 units ``x + conv(lrelu(conv_d(lrelu(x))))`` with dilations d = 1, 3, 5 on the first conv; then
leaky ReLU with torch's default slope 0.01 (as the official generator calls it), ``conv_post`` (k7) to one
channel and tanh. A (1, 80, 8) mel gives (1, 1, 2048) samples.
WN: legacy ``torch.nn.utils.weight_norm`` (``api="legacy"``, the default) on conv_pre, the 4
ConvTranspose1d, the 72 resblock convs and conv_post: 78 layers. torch's default ``dim=0`` normalizes a
ConvTranspose1d per *input* channel, as in the original.

NOTE: ``initial_channels=32`` instead of 512 (channels 32 -> 16 -> 8 -> 4 -> 2).
NOTE: the input is 8 mel frames instead of a training segment of 32.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._wn import weight_norm_every_layer

INPUT_SHAPE = (1, 80, 8)
EXPECTED_WN_LAYERS = 78
LRELU_SLOPE = 0.1


def _same_padding(kernel: int, dilation: int) -> int:
    return dilation * (kernel - 1) // 2


class ResBlock1(nn.Module):
    def __init__(self, channels: int, kernel: int, dilations=(1, 3, 5)):
        super().__init__()
        self.convs1 = nn.ModuleList(nn.Conv1d(channels, channels, kernel, 1, _same_padding(kernel, d), d)
                                    for d in dilations)
        self.convs2 = nn.ModuleList(nn.Conv1d(channels, channels, kernel, 1, _same_padding(kernel, 1))
                                    for _ in dilations)

    def forward(self, x):
        for c1, c2 in zip(self.convs1, self.convs2):
            xt = c2(F.leaky_relu(c1(F.leaky_relu(x, LRELU_SLOPE)), LRELU_SLOPE))
            x = xt + x
        return x


class Generator(nn.Module):
    def __init__(self, n_mels: int = 80, initial_channels: int = 32, rates=(8, 8, 2, 2),
                 kernels=(16, 16, 4, 4), resblock_kernels=(3, 7, 11)):
        super().__init__()
        self.conv_pre = nn.Conv1d(n_mels, initial_channels, 7, 1, 3)
        self.ups, self.resblocks = nn.ModuleList(), nn.ModuleList()
        channels = initial_channels
        for u, k in zip(rates, kernels):
            self.ups.append(nn.ConvTranspose1d(channels, channels // 2, k, u, (k - u) // 2))
            channels //= 2
            self.resblocks.extend(ResBlock1(channels, rk) for rk in resblock_kernels)
        self.num_kernels = len(resblock_kernels)
        self.conv_post = nn.Conv1d(channels, 1, 7, 1, 3)

    def forward(self, x):
        x = self.conv_pre(x)
        for i, up in enumerate(self.ups):
            x = up(F.leaky_relu(x, LRELU_SLOPE))
            blocks = self.resblocks[i * self.num_kernels:(i + 1) * self.num_kernels]
            x = sum(block(x) for block in blocks) / self.num_kernels  # the MRF: mean of the resblocks
        return torch.tanh(self.conv_post(F.leaky_relu(x)))


def build(initial_channels: int = 32, api: str = "legacy") -> nn.Module:
    """A weight-normed HiFi-GAN V1 generator with ``initial_channels`` after conv_pre."""
    return weight_norm_every_layer(Generator(initial_channels=initial_channels), api)
