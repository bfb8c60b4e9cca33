"""A Vision Transformer encoder with ``nn.MultiheadAttention``, weight-normed.

An Image is Worth 16x16 Words: Transformers for Image Recognition at Scale - Dosovitskiy et al. (2021).

A patch embedding (a p x p conv of stride p) to (N, tokens, D), a class token prepended and a learned position
embedding added; pre-norm blocks ``x = x + MHA(LN(x))`` and ``x = x + MLP(LN(x))`` (Linear -> GELU -> Linear);
a final LayerNorm and a linear classifier on the class token. WN: the patch embedding, each attention's output
projection (``out_proj``; its fused input projection is a raw parameter, not a layer), the MLPs' Linear and the
classifier: ``2 + 3 * depth``, 20 at the defaults.

NOTE: D = 32, 4 heads, MLP width 64, depth 6, patch 4 on (2, 3, 32, 32) (64 tokens + 1), instead of ViT-B/16
(D = 768, 12 heads, width 3072, depth 12) on 224 x 224.
"""
from __future__ import annotations

import torch
from torch import nn

from ._wn import weight_norm_every_layer

INPUT_SHAPE = (2, 3, 32, 32)
EXPECTED_WN_LAYERS = 20


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, hidden: int):
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim), nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x):
        h = self.norm1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class ViT(nn.Module):
    def __init__(self, image: int = 32, patch: int = 4, dim: int = 32, depth: int = 6, heads: int = 4,
                 hidden: int = 64, num_classes: int = 10):
        super().__init__()
        self.embed = nn.Conv2d(3, dim, patch, patch)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(0.02 * torch.randn(1, (image // patch) ** 2 + 1, dim))
        self.blocks = nn.Sequential(*[Block(dim, heads, hidden) for _ in range(depth)])
        self.norm, self.head = nn.LayerNorm(dim), nn.Linear(dim, num_classes)

    def forward(self, x):
        x = self.embed(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], 1) + self.pos
        return self.head(self.norm(self.blocks(x))[:, 0])


def build(api: str = "torch") -> nn.Module:
    """A weight-normed six-block ViT encoder on 32 x 32 images."""
    return weight_norm_every_layer(ViT(), api)
