"""The IMPALA residual network (Espeholt et al., 2018) made deep: the policy and value trunk of the poster's
RL result (docs/method.md §7.7), `norm = wn | bn | none`.

Three stacks of [Conv3x3 -> MaxPool 3x3/2 -> N residual blocks], then ReLU, flatten and a Linear to
`features` units with a ReLU; depth = 6N + 4 (the three stack convs, 2 convs per block, the Linear), so
the poster's 100-layer net is N = 16.

NOTE: a block computes `x + conv2(ReLU(conv1(x)))`, the block the theory analyses (docs/method.md §2.2),
where Espeholt et al.'s computes `x + conv2(ReLU(conv1(ReLU(x))))`; the poster does not say which it used.
Each stack conv starts its stage's stream and nothing but a max-pool follows it, so it declares gamma 1
(docs/method.md §3.7), as a stem that nothing follows.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from wninit.errors import UserError
from wninit.models.layers import batch_norm, check_norm, conv, head, linear, positive
from wninit.models.resnet import DEPTH_EXTRA, blocks_per_stage
from wninit.structure.roles import mark_probe

# Espeholt et al.'s channels per stack, as multiples of the first.
STACK_WIDTHS = (1, 2, 2)


class ImpalaBlock(nn.Module):
    """`x + conv2(ReLU(conv1(x)))` (WN/plain) or `x + bn2(conv2(ReLU(bn1(conv1(x)))))` (BN), roles declared."""

    def __init__(self, channels: int, norm: str, wn_api: str, *, stage: int, block: int, stage_blocks: int):
        super().__init__()
        where = dict(stage=stage, block=block, stage_blocks=stage_blocks)
        self.conv1 = conv(channels, channels, 3, 1, norm, wn_api, "block_in", **where)
        self.conv2 = conv(channels, channels, 3, 1, norm, wn_api, "block_out", **where)
        self.bn1, self.bn2 = batch_norm(channels, norm), batch_norm(channels, norm)
        mark_probe(self, "block")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(x)
        if self.bn1 is not None:
            h = self.bn1(h)
        h = self.conv2(F.relu(h))
        if self.bn2 is not None:
            h = self.bn2(h)
        return x + h


class ImpalaStack(nn.Module):
    """One stage: the conv that sets its width, a 3x3 max-pool of stride 2, `blocks` residual blocks."""

    def __init__(self, c_in: int, c_out: int, blocks: int, norm: str, wn_api: str, *, stage: int):
        super().__init__()
        self.conv = conv(c_in, c_out, 3, 1, norm, wn_api, "stem", gamma=1.0)
        self.bn = batch_norm(c_out, norm)
        self.blocks = nn.Sequential(*[ImpalaBlock(c_out, norm, wn_api, stage=stage, block=b + 1, stage_blocks=blocks)
                                      for b in range(blocks)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        return self.blocks(F.max_pool2d(x, 3, stride=2, padding=1))


class ImpalaNet(nn.Module):
    """IMPALA-(6N+4): three stacks (widths `width` x 1, 2, 2) of a conv, a max-pool and N blocks, then
    ReLU, flatten, Linear to `features` and ReLU; with `num_classes` a plain Linear head follows.

    `in_shape` is (C, H, W); the Linear's input is the stacks' output flattened, as Espeholt et al.
    Without `num_classes` the output is the `features`-dim embedding an actor-critic's heads read.

    Examples:
        >>> net = ImpalaNet((4, 10, 10), depth=100)  # the poster's depth, MinAtar's observations
        >>> records = wninit.initialize(net, "proposed")
    """

    def __init__(self, in_shape: tuple[int, int, int], depth: int, num_classes: int | None = None, width: int = 16,
                 features: int = 256, norm: str = "wn", wn_api: str = "wninit"):
        super().__init__()
        check_norm(norm)
        if len(in_shape) != 3:
            raise UserError(f"ImpalaNet needs images: in_shape must be (C, H, W), got {tuple(in_shape)}")
        positive("width", width), positive("features", features)
        n = blocks_per_stage(depth, DEPTH_EXTRA["impala"], "ImpalaNet")
        c_in, h, w = in_shape
        stacks = []
        for s, mult in enumerate(STACK_WIDTHS):
            stacks.append(ImpalaStack(c_in, width * mult, n, norm, wn_api, stage=s + 1))
            c_in, h, w = width * mult, (h + 1) // 2, (w + 1) // 2  # the max-pool (3, stride 2, padding 1)
        self.stacks = nn.Sequential(*stacks)
        self.fc = linear(c_in * h * w, features, norm, wn_api, "hidden")
        self.fc_bn = nn.BatchNorm1d(features) if norm == "bn" else None
        self.head = head(features, num_classes) if num_classes is not None else None
        self.norm, self.depth, self.blocks_per_stage, self.features_dim = norm, depth, n, features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.fc(F.relu(self.stacks(x)).flatten(1))
        x = F.relu(x if self.fc_bn is None else self.fc_bn(x))
        return x if self.head is None else self.head(x)
