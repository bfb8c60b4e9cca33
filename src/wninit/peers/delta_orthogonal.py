"""Delta-orthogonal init: convolution kernels zero but at the spatial center, which is an orthogonal matrix.

Dynamical Isometry and a Mean Field Theory of CNNs: How to Train 10,000-Layer Vanilla Convolutional Neural
Networks - Xiao, Bahri, Sohl-Dickstein, Schoenholz & Pennington (2018).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from wninit.errors import UserError
from wninit.peers._graph import plain_structure

__all__ = ["delta_orthogonal", "delta_orthogonal_", "center_index"]


def center_index(weight: torch.Tensor) -> tuple:
    """Index of a kernel's spatial center: `k // 2` per spatial axis (for an even `k`, the later of the two)."""
    return (slice(None), slice(None)) + tuple(k // 2 for k in weight.shape[2:])


def delta_orthogonal_(weight: torch.Tensor, gain: float = 1.0, groups: int = 1,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    r"""Fill a conv `weight` with a delta-orthogonal kernel: zero off-center, `gain * H` at the center.

    Dynamical Isometry and a Mean Field Theory of CNNs: How to Train 10,000-Layer Vanilla Convolutional Neural
    Networks - Xiao, Bahri, Sohl-Dickstein, Schoenholz & Pennington (2018), Algorithm 2.

    $$
    W[:, :, c] = \text{gain}\cdot H, \quad H H^\top = I \text{ (or } H^\top H = I\text{)}, \qquad
    W[:, :, p] = 0 \ (p \neq c)
    $$

    A grouped conv (`groups` > 1, weight `(out, in/groups, k...)`) gets one orthogonal block per group.

    Examples:
        >>> w = delta_orthogonal_(torch.empty(16, 16, 3, 3), gain=math.sqrt(2))
    """
    with torch.no_grad():
        center = torch.empty(weight.shape[:2], dtype=weight.dtype, device=weight.device)
        for block in center.chunk(groups, dim=0):
            nn.init.orthogonal_(block, gain=gain, generator=generator)
        weight.zero_()
        weight[center_index(weight)] = center
    return weight


def delta_orthogonal(model: nn.Module, *, generator: torch.Generator | None = None) -> nn.Module:
    r"""Initialize every conv of a plain network delta-orthogonally and every Linear orthogonally, biases 0.

    Dynamical Isometry and a Mean Field Theory of CNNs: How to Train 10,000-Layer Vanilla Convolutional Neural
    Networks - Xiao, Bahri, Sohl-Dickstein, Schoenholz & Pennington (2018).

    The gain is `1/sqrt(E[phi(z)^2])` for the activation `phi` that follows the layer (as discovered,
    docs/method.md §3.7; ReLU: `sqrt(2)`, the critical `sigma_w^2 = 2`), else 1.

    Examples:
        >>> model = wninit.models.CNN(3, 128, depth=50, num_classes=10, norm="none")
        >>> wninit.peers.apply(model, "delta-orthogonal")
    """
    s = plain_structure(model, "delta-orthogonal")
    convs = [n for n, m in model.named_modules() if isinstance(m, nn.modules.conv._ConvNd)]
    if not convs:
        raise UserError("peer 'delta-orthogonal' initializes convolutions and this model has none: "
                        "use 'lsuv' or the 'orthogonal' scheme")
    for name, role in s.roles.items():
        layer = model.get_submodule(name)
        follow = role.follow if role.follow is not None else (0.5 if role.kind in ("hidden", "block_in") else 1.0)
        gain = 1.0 / math.sqrt(follow)
        if isinstance(layer, nn.modules.conv._ConvNd):
            delta_orthogonal_(layer.weight, gain, 1 if layer.transposed else layer.groups, generator)
        else:
            nn.init.orthogonal_(layer.weight, gain=gain, generator=generator)
        if layer.bias is not None:
            with torch.no_grad():
                layer.bias.zero_()
    return model
