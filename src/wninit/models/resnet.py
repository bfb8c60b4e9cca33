"""CIFAR ResNets (docs/method.md §5): He et al.'s ResNet-(6N+2) and Zagoruyko's WRN-(6N+4)-k, basic blocks.

WN / plain blocks compute `shortcut(x) + conv2(ReLU(conv1(x)))` with no ReLU before conv1 and none
after the addition (docs/method.md §2.2: the block the theory analyses). BN blocks are pre-activation, as the
reference: `shortcut(bn1(x)) + conv2(ReLU(bn2(conv1(ReLU(bn1(x))))))`.
NOTE: the reference's BN shortcut takes `bn1(x)` without the ReLU; kept as it is.

`bn_reference=True` is the reference code's BN nets as they ran (the authors' own BN rows of Table 1,
docs/method.md §7.5): BN weights U(0, 1) (torch 1.1's default), convs keep their biases, and a
projection block calls `bn1` twice per step (once per path), so its running statistics are updated
twice. The default BN mode is today's: BN weight 1, no conv bias before a BN, `bn1` once.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from wninit.errors import UserError
from wninit.structure.roles import mark_probe
from wninit.models.layers import batch_norm, check_norm, conv, head, positive

# The reference ``ResNet`` class gives its stem no gain, so it gets the default gamma 2 (docs/method.md §3.6 item 8);
# its ``WideResNet`` passes 1. The paper is silent; the code produced Table 1 and 2's numbers.
RESNET_STEM_GAMMA = 2.0
# depth = 6N + DEPTH_EXTRA[arch] (docs/method.md §5): the stem and the head, plus the WRN's three shortcut convs;
# the IMPALA net's (models/impala.py): its three stack convs and its Linear.
DEPTH_EXTRA = {"resnet": 2, "wrn": 4, "impala": 4}


class BasicBlock(nn.Module):
    """One basic block: `shortcut(x) + conv2(ReLU(conv1(x)))` (WN/plain) or its pre-activation BN form; its
    convs declare their roles (stage, block index, the stage's block count B_k; docs/method.md §3.4)."""

    def __init__(self, c_in: int, c_out: int, stride: int, norm: str, wn_api: str, *, stage: int,
                 block: int, stage_blocks: int, bn_reference: bool = False):
        super().__init__()
        where = dict(stage=stage, block=block, stage_blocks=stage_blocks, bias=True if bn_reference else None)
        self.conv1 = conv(c_in, c_out, 3, stride, norm, wn_api, "block_in", **where)
        self.conv2 = conv(c_out, c_out, 3, 1, norm, wn_api, "block_out", **where)
        # A 1x1 projection whenever the shape changes (docs/method.md §5; the stage's "shortcut connection" of §2.2).
        needs_projection = stride != 1 or c_in != c_out
        self.shortcut = conv(c_in, c_out, 1, stride, norm, wn_api, "shortcut", **where) if needs_projection else None
        self.bn1 = batch_norm(c_in, norm, bn_reference)
        self.bn2 = batch_norm(c_out, norm, bn_reference)
        self.bn1_twice = bn_reference and needs_projection
        self.stage, self.block, self.stage_blocks = stage, block, stage_blocks
        mark_probe(self, "block")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bn1 is not None:
            pre = self.bn1(x)
            identity = x if self.shortcut is None else self.shortcut(pre)
            if self.bn1_twice:
                pre = self.bn1(x)  # the same output; the running statistics move a second time
            return identity + self.conv2(F.relu(self.bn2(self.conv1(F.relu(pre)))))
        identity = x if self.shortcut is None else self.shortcut(x)
        return identity + self.conv2(F.relu(self.conv1(x)))


def _stages(c_in: int, widths: list[int], n: int, norm: str, wn_api: str, bn_reference: bool) -> nn.Sequential:
    blocks = []
    for s, width in enumerate(widths):
        for b in range(n):
            stride = 2 if (s > 0 and b == 0) else 1
            blocks.append(BasicBlock(c_in, width, stride, norm, wn_api, stage=s + 1, block=b + 1, stage_blocks=n,
                                     bn_reference=bn_reference))
            c_in = width
    return nn.Sequential(*blocks)


def blocks_per_stage(depth: int, extra: int, family: str) -> int:
    """N from a depth of the form 6N+extra (2 for ResNet, 4 for WRN), or a ValueError naming the valid form."""
    if not isinstance(depth, int) or isinstance(depth, bool) or depth < 6 + extra or (depth - extra) % 6:
        raise UserError(f"{family} depth must be 6N+{extra} with N >= 1 (e.g. {6 + extra}, {6 * 9 + extra}), got {depth!r}")
    return (depth - extra) // 6


class ResNet(nn.Module):
    """He et al.'s CIFAR ResNet-(6N+2): stem conv, 3 stages of N basic blocks (width, 2w, 4w), GAP, Linear.

    BN mode: stem -> BN (no ReLU) ... final BN (no ReLU) -> GAP, as the reference `ResNet` class.
    ResNet-56/110/164 are N = 9/18/27 (all basic blocks: the reference has no bottleneck). The stem
    declares gamma 2 (`RESNET_STEM_GAMMA`, the reference class's); `wninit.initialize(...,
    stem_gamma=1.0)` gives the WideResNet's 1 instead. `bn_reference`: see the module docstring.
    """

    def __init__(self, depth: int, num_classes: int, in_channels: int = 3, width: int = 16, norm: str = "wn",
                 wn_api: str = "wninit", bn_reference: bool = False):
        super().__init__()
        check_norm(norm)
        positive("in_channels", in_channels), positive("width", width), positive("num_classes", num_classes)
        n = blocks_per_stage(depth, DEPTH_EXTRA["resnet"], "ResNet")
        bias = True if bn_reference else None
        self.stem = conv(in_channels, width, 3, 1, norm, wn_api, "stem", bias=bias, gamma=RESNET_STEM_GAMMA)
        self.stem_bn = batch_norm(width, norm, bn_reference)
        self.blocks = _stages(width, [width, 2 * width, 4 * width], n, norm, wn_api, bn_reference)
        self.final_bn = batch_norm(4 * width, norm, bn_reference)
        self.head = head(4 * width, num_classes)
        self.norm, self.depth, self.blocks_per_stage = norm, depth, n

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        if self.stem_bn is not None:
            x = self.stem_bn(x)
        x = self.blocks(x)
        if self.final_bn is not None:
            x = self.final_bn(x)
        return self.head(x.mean(dim=(2, 3)))


class WideResNet(nn.Module):
    """WRN-(6N+4)-k: conv1 3->16, stages of N blocks with widths 16k/32k/64k, GAP, Linear(64k).

    The "+4" counts conv1 and the three shortcut convs. No dropout; in BN mode no BN after conv1 and no
    final BN+ReLU, as the reference `WideResNet` class. `reduced_memory` makes conv1 stride 2
    (the reference's `--wrn_reduced_memory` for very deep nets). `bn_reference`: see the module docstring.
    """

    def __init__(self, depth: int, k: int, num_classes: int, in_channels: int = 3, norm: str = "wn",
                 wn_api: str = "wninit", reduced_memory: bool = False, bn_reference: bool = False):
        super().__init__()
        check_norm(norm)
        positive("k", k), positive("in_channels", in_channels), positive("num_classes", num_classes)
        n = blocks_per_stage(depth, DEPTH_EXTRA["wrn"], "WideResNet")
        self.stem = conv(in_channels, 16, 3, 2 if reduced_memory else 1, norm, wn_api, "stem",
                         bias=True if bn_reference else None)
        self.blocks = _stages(16, [16 * k, 32 * k, 64 * k], n, norm, wn_api, bn_reference)
        self.head = head(64 * k, num_classes)
        self.norm, self.depth, self.k, self.blocks_per_stage = norm, depth, k, n

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)).mean(dim=(2, 3)))
