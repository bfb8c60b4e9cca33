"""The paper's WN CNN (docs/method.md §5, `--nn cnn`): `depth` x [Conv3x3 -> (WN|BN) -> ReLU], GAP, plain Linear.

Layers 0 and 1 have stride 2, as the reference ("to reduce memory footprint").
"""
from __future__ import annotations

import torch
from torch import nn

from wninit.structure.roles import mark_probe
from wninit.models.layers import check_norm, conv, head, positive


class CNN(nn.Module):
    """The paper's constant-width CNN: `depth` x [Conv3x3 -> (WN|BN) -> ReLU] (stride 2 at layers 0 and 1),
    global average pool, plain Linear head (docs/method.md §5)."""

    def __init__(self, in_channels: int, width: int, depth: int, num_classes: int, norm: str = "wn",
                 wn_api: str = "wninit"):
        super().__init__()
        check_norm(norm)
        positive("in_channels", in_channels), positive("width", width)
        positive("depth", depth), positive("num_classes", num_classes)
        layers: list[nn.Module] = []
        for i in range(depth):
            layers.append(conv(in_channels if i == 0 else width, width, 3, 2 if i < 2 else 1, norm, wn_api, "hidden"))
            if norm == "bn":
                layers.append(nn.BatchNorm2d(width))
            layers.append(mark_probe(nn.ReLU()))
        self.features = nn.Sequential(*layers)
        self.head = head(width, num_classes)
        self.norm, self.depth = norm, depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=(2, 3)))
