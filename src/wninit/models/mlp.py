"""The paper's WN MLP (docs/method.md §5, `--nn mlp`): `depth` x [Linear -> (WN|BN) -> ReLU] -> plain Linear."""
from __future__ import annotations

import torch
from torch import nn

from wninit.structure.roles import mark_probe
from wninit.models.layers import check_norm, head, linear, positive


class MLP(nn.Module):
    """Constant-width ReLU MLP; `depth` counts the hidden layers (the paper's Fig. 2 "Depth")."""

    def __init__(self, in_features: int, width: int, depth: int, num_classes: int, norm: str = "wn",
                 wn_api: str = "wninit"):
        super().__init__()
        check_norm(norm)
        positive("in_features", in_features), positive("width", width)
        positive("depth", depth), positive("num_classes", num_classes)
        layers: list[nn.Module] = [nn.Flatten()]
        for i in range(depth):
            layers.append(linear(in_features if i == 0 else width, width, norm, wn_api))
            if norm == "bn":
                layers.append(nn.BatchNorm1d(width))
            layers.append(mark_probe(nn.ReLU()))
        self.features = nn.Sequential(*layers)
        self.head = head(width, num_classes)
        self.norm, self.depth = norm, depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
