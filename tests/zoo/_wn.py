"""Weight norm for the zoo, with torch's own functions only (what a user of these architectures writes).

The zoo must not depend on wninit to build its models: wninit is what it tests.
"""
from __future__ import annotations

import warnings

from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import weight_norm as torch_weight_norm
from torch.nn.utils.weight_norm import WeightNorm as LegacyWeightNorm

APIS = ("torch", "legacy")
WN_KINDS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d,
            nn.ConvTranspose3d)


def weight_norm_every_layer(model: nn.Module, api: str) -> nn.Module:
    """Wrap every Linear/Conv/ConvTranspose of ``model`` in weight norm with torch's default ``dim=0``.

    ``dim=0`` is per output unit for Linear/Conv and per *input* channel for ConvTranspose (its weight is
    ``(in, out/groups, *k)``): that is what models written with torch's functions get, HiFi-GAN included.
    """
    if api not in APIS:
        raise ValueError(f"unknown weight-norm api {api!r}: choose 'torch' or 'legacy'")
    for layer in [m for m in model.modules() if isinstance(m, WN_KINDS)]:
        if api == "torch":
            torch_weight_norm(layer)
        else:
            with warnings.catch_warnings():  # deprecated, but it is what the original HiFi-GAN calls
                warnings.simplefilter("ignore", FutureWarning)
                nn.utils.weight_norm(layer)
    return model


def is_weight_normed(layer: nn.Module) -> bool:
    """True when ``layer.weight`` is weight-normed by either torch API (parametrization or legacy hook)."""
    if parametrize.is_parametrized(layer, "weight"):
        return any(type(p).__name__ == "_WeightNorm" for p in layer.parametrizations.weight)
    return any(isinstance(h, LegacyWeightNorm) for h in layer._forward_pre_hooks.values())


def count_weight_normed(model: nn.Module) -> int:
    """How many layers of ``model`` are weight-normed, by either torch API, counted without wninit."""
    return sum(is_weight_normed(m) for m in model.modules())
