"""ConvNeXt, weight-normed.

A ConvNet for the 2020s - Liu et al. (2022).

A patchify stem (a 4 x 4 conv of stride 4) and a channels-first LayerNorm; stages of blocks
``x = x + gamma * pw2(GELU(pw1(LN(dw7x7(x)))))``, the pointwise layers Linear on channels-last maps and
``gamma`` a per-channel layer scale; between stages a LayerNorm and a 2 x 2 conv of stride 2; the global mean,
a LayerNorm and a linear classifier. The LayerNorms keep their affine parameters (not weight-normed).
WN: the stem, every depthwise conv and pointwise Linear, the downsampling convs and the classifier:
``2 + 3 * sum(depths) + (stages - 1)``, 15 at the defaults.

NOTE: widths (16, 32), depths (2, 2) on (2, 3, 32, 32), layer scale 0.1 instead of ConvNeXt-T's widths
(96, 192, 384, 768), depths (3, 3, 9, 3) and layer scale 1e-6 on 224 x 224 (0.1: the branches then add
something the tests can see); no stochastic depth (the MBConv stack has it).
"""
from __future__ import annotations

import torch
from torch import nn

from ._wn import weight_norm_every_layer

INPUT_SHAPE = (2, 3, 32, 32)
EXPECTED_WN_LAYERS = 15


class ChannelsFirstLayerNorm(nn.LayerNorm):
    def forward(self, x):  # (N, C, H, W): normalize over C at each position
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class Block(nn.Module):
    def __init__(self, dim: int, layer_scale: float):
        super().__init__()
        self.dw = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim)
        self.pw1, self.act, self.pw2 = nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale))

    def forward(self, x):
        h = self.norm(self.dw(x).permute(0, 2, 3, 1))
        h = self.gamma * self.pw2(self.act(self.pw1(h)))
        return x + h.permute(0, 3, 1, 2)


class ConvNeXt(nn.Module):
    def __init__(self, widths=(16, 32), depths=(2, 2), num_classes: int = 10, layer_scale: float = 0.1):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, widths[0], 4, 4), ChannelsFirstLayerNorm(widths[0]))
        stages = []
        for i, (w, d) in enumerate(zip(widths, depths)):
            down = [] if i == 0 else [ChannelsFirstLayerNorm(widths[i - 1]), nn.Conv2d(widths[i - 1], w, 2, 2)]
            stages.append(nn.Sequential(*down, *[Block(w, layer_scale) for _ in range(d)]))
        self.stages = nn.Sequential(*stages)
        self.norm, self.head = nn.LayerNorm(widths[-1]), nn.Linear(widths[-1], num_classes)

    def forward(self, x):
        return self.head(self.norm(self.stages(self.stem(x)).mean((2, 3))))


def build(api: str = "torch") -> nn.Module:
    """A weight-normed two-stage ConvNeXt on 32 x 32 images."""
    return weight_norm_every_layer(ConvNeXt(), api)
