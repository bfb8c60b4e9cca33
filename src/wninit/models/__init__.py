"""The paper's four architectures (docs/method.md §5), each with `norm` in `"wn" | "bn" | "none"`.

This package owns the architecture vocabulary: the names (`ARCHS`), the norms (`NORMS`), the 6N+k depth
rule of the ResNets (`DEPTH_EXTRA`, [`blocks_per_stage`][wninit.models.resnet.blocks_per_stage]) and the gamma each stem declares
([`model_stem_gamma`][wninit.models.model_stem_gamma]); [`wninit.suite.train.RunConfig`][wninit.suite.train.config.RunConfig] and the CLI import them from here.
"""
from __future__ import annotations

from torch import nn

from wninit.errors import UserError
from wninit.models.cnn import CNN
from wninit.models.impala import ImpalaNet
from wninit.models.layers import NORMS
from wninit.models.mlp import MLP
from wninit.models.resnet import DEPTH_EXTRA, RESNET_STEM_GAMMA, BasicBlock, ResNet, WideResNet, blocks_per_stage

__all__ = ["ARCHS", "NORMS", "DEPTH_EXTRA", "RESNET_STEM_GAMMA", "MLP", "CNN", "ResNet", "WideResNet", "BasicBlock", "ImpalaNet",
           "build_model", "blocks_per_stage", "model_stem_gamma"]

ARCHS = ("mlp", "cnn", "resnet", "wrn", "impala")


def model_stem_gamma(arch: str) -> float:
    """The gamma the stem of `arch`'s model declares: `RESNET_STEM_GAMMA` (2) for `resnet`, else 1.

    The reference `ResNet` class gives its stem the default gamma 2, its `WideResNet` passes 1, and the MLP
    and CNN have no stem role (docs/method.md §3.6 item 8; [`wninit.init.role_gamma`][wninit.init.schemes.role_gamma] gives an undeclared stem 1).
    """
    return RESNET_STEM_GAMMA if arch == "resnet" else 1.0


def build_model(arch: str, *, in_shape: tuple[int, ...], num_classes: int, depth: int, width: int = 128,
                k: int = 1, norm: str = "wn", wn_api: str = "wninit", reduced_memory: bool = False,
                bn_reference: bool = False) -> nn.Module:
    """One of the paper's architectures by name, for inputs of shape `in_shape` (C, H, W) or (features,).

    `width` is the MLP/CNN hidden width and the ResNet's first-stage width (16 for He et al.'s nets);
    `k` is the WRN widening factor; `reduced_memory` (WRN: stride-2 stem) and `bn_reference` (ResNet,
    WRN: the reference code's BN nets) as in [`WideResNet`][wninit.models.resnet.WideResNet] and `wninit.models.resnet`.
    """
    if arch in ("mlp", "cnn", "impala") and (reduced_memory or bn_reference):
        raise UserError(f"reduced_memory and bn_reference are options of the resnet/wrn archs, not of {arch!r}")
    if arch == "resnet" and reduced_memory:
        raise UserError("reduced_memory (a stride-2 stem) is an option of the wrn arch only, as in the reference")
    if arch == "mlp":
        features = 1
        for d in in_shape:
            features *= d
        return MLP(features, width, depth, num_classes, norm, wn_api)
    if arch == "cnn":
        return CNN(in_shape[0], width, depth, num_classes, norm, wn_api)
    if arch == "resnet":
        return ResNet(depth, num_classes, in_shape[0], width, norm, wn_api, bn_reference=bn_reference)
    if arch == "impala":
        return ImpalaNet(tuple(in_shape), depth, num_classes, width, norm=norm, wn_api=wn_api)
    if arch == "wrn":
        return WideResNet(depth, k, num_classes, in_shape[0], norm, wn_api, reduced_memory, bn_reference)
    raise UserError(f"unknown arch {arch!r}: choose one of {', '.join(ARCHS)}")
