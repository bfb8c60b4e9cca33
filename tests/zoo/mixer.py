"""MLP-Mixer, weight-normed.

MLP-Mixer: An all-MLP Architecture for Vision - Tolstikhin et al. (2021).

A per-patch linear embedding (a p x p conv of stride p) to (N, tokens, D); ``depth`` blocks, each
``x = x + token_mlp(LN(x)^T)^T`` then ``x = x + channel_mlp(LN(x))``, the MLPs Linear -> GELU -> Linear
(the token MLP acts along the tokens, the channel MLP along D); a final LayerNorm, the mean over tokens
and a linear classifier. The LayerNorms keep their affine parameters (not weight-normed).
WN: the patch embedding, the 4 Linear of each block and the classifier: ``2 + 4 * depth``, 34 at ``depth=8``.

NOTE: D = 32, token MLP width 16, channel MLP width 64, depth 8, patch 4 on (2, 3, 32, 32) (64 tokens),
10 classes, instead of Mixer-S/16 on 224 x 224 (D = 512, widths 256 and 2048, depth 8).
"""
from __future__ import annotations

from torch import nn

from ._wn import weight_norm_every_layer

INPUT_SHAPE = (2, 3, 32, 32)
EXPECTED_WN_LAYERS = 34


class MlpBlock(nn.Sequential):
    def __init__(self, dim: int, hidden: int):
        super().__init__(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))


class MixerBlock(nn.Module):
    def __init__(self, tokens: int, dim: int, token_hidden: int, channel_hidden: int):
        super().__init__()
        self.norm1, self.token_mlp = nn.LayerNorm(dim), MlpBlock(tokens, token_hidden)
        self.norm2, self.channel_mlp = nn.LayerNorm(dim), MlpBlock(dim, channel_hidden)

    def forward(self, x):  # x: (N, tokens, D)
        x = x + self.token_mlp(self.norm1(x).transpose(1, 2)).transpose(1, 2)
        return x + self.channel_mlp(self.norm2(x))


class Mixer(nn.Module):
    def __init__(self, image: int = 32, patch: int = 4, dim: int = 32, depth: int = 8, token_hidden: int = 16,
                 channel_hidden: int = 64, num_classes: int = 10):
        super().__init__()
        tokens = (image // patch) ** 2
        self.stem = nn.Conv2d(3, dim, patch, patch)
        self.blocks = nn.Sequential(*[MixerBlock(tokens, dim, token_hidden, channel_hidden) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x):
        x = self.stem(x).flatten(2).transpose(1, 2)  # (N, D, h, w) -> (N, tokens, D)
        return self.head(self.norm(self.blocks(x)).mean(1))


def build(depth: int = 8, api: str = "torch") -> nn.Module:
    """A weight-normed MLP-Mixer of ``depth`` blocks on 32 x 32 images."""
    return weight_norm_every_layer(Mixer(depth=depth), api)
