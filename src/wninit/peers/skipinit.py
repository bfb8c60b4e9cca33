"""SkipInit: a learnable scalar at the end of each residual branch, initialized at zero.

Batch Normalization Biases Residual Blocks Towards the Identity Function in Deep Networks - De & Smith (2020).
"""
from __future__ import annotations

from torch import nn

from wninit.peers._graph import ScaledBranch, branches, plain_structure, replace_module

__all__ = ["skipinit", "scale_branches"]


def scale_branches(model: nn.Module, method: str, alpha: float) -> nn.Module:
    """Replace each discovered branch's last layer by `alpha * layer(x)` with a learnable `alpha`."""
    for b in branches(plain_structure(model, method), method):
        replace_module(model, b.end, ScaledBranch(model.get_submodule(b.end), alpha))
    return model


def skipinit(model: nn.Module, *, alpha: float = 0.0) -> nn.Module:
    r"""Multiply every residual branch of a plain network by a learnable scalar `alpha` (0 at init).

    Batch Normalization Biases Residual Blocks Towards the Identity Function in Deep Networks - De & Smith (2020).

    $$
    x_{i+1} = x_i + \alpha_i f_i(x_i), \qquad \alpha_i = 0 \text{ at init},
    $$

    so each block is its skip path at init (SkipInit replaces BatchNorm; here the network has none). The
    layers keep their init (e.g. `wninit.initialize(model, "he")` first).

    Args:
        model: a plain network with residual branches.
        alpha: the scalars' initial value (the paper's 0; it also tries a small constant).

    Examples:
        >>> model = wninit.models.ResNet(56, 10, norm="none")
        >>> wninit.peers.apply(model, "skipinit")
    """
    return scale_branches(model, "skipinit", alpha)
