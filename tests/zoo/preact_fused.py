"""A pre-activation ResNet whose BatchNorm and ReLU are one fused module, weight-normed.

Identity Mappings in Deep Residual Networks - He et al. (2016); the fused module is what packaged
implementations use (a BatchNorm subclass whose forward also applies the activation).

A 3 x 3 stem; pre-activation blocks ``x + conv2(BNAct(conv1(BNAct(x))))``, a 1 x 1 projection of stride 2
on the pre-activated input where a stage starts; BNAct, the global mean and a linear classifier. The fused
modules keep their BatchNorm (running statistics 0 and 1 at construction: in eval the normalization is the
identity and the module a ReLU). WN: every conv and the classifier: ``1 + 2 * blocks + projections + 1``, 16 at
the defaults.

NOTE: stages of widths (16, 32, 64), 2 blocks each, on (2, 3, 16, 16), instead of PreAct-ResNet-18 on CIFAR.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from ._wn import weight_norm_every_layer

INPUT_SHAPE = (2, 3, 16, 16)
EXPECTED_WN_LAYERS = 16


class BatchNormAct2d(nn.BatchNorm2d):
    """BatchNorm2d followed by a ReLU, in one module (the shape of timm's BatchNormAct2d)."""

    def forward(self, x):
        return F.relu(super().forward(x))


class Block(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.bn1, self.conv1 = BatchNormAct2d(c_in), nn.Conv2d(c_in, c_out, 3, stride, 1)
        self.bn2, self.conv2 = BatchNormAct2d(c_out), nn.Conv2d(c_out, c_out, 3, 1, 1)
        self.proj = nn.Conv2d(c_in, c_out, 1, stride) if stride != 1 or c_in != c_out else None

    def forward(self, x):
        h = self.bn1(x)
        skip = self.proj(h) if self.proj is not None else x
        return skip + self.conv2(self.bn2(self.conv1(h)))


class PreActFused(nn.Module):
    def __init__(self, widths=(16, 32, 64), blocks: int = 2, num_classes: int = 10):
        super().__init__()
        layers, c = [nn.Conv2d(3, widths[0], 3, padding=1)], widths[0]
        for i, w in enumerate(widths):
            for j in range(blocks):
                layers.append(Block(c, w, 2 if i > 0 and j == 0 else 1))
                c = w
        self.features, self.bn, self.head = nn.Sequential(*layers), BatchNormAct2d(c), nn.Linear(c, num_classes)

    def forward(self, x):
        return self.head(self.bn(self.features(x)).mean((2, 3)))


def build(api: str = "torch") -> nn.Module:
    """A weight-normed pre-activation ResNet with fused BatchNorm+ReLU modules on 16 x 16 images."""
    return weight_norm_every_layer(PreActFused(), api)
