"""ReZero: each residual branch times a learnable scalar that starts at zero.

ReZero is All You Need: Fast Convergence at Large Depth - Bachlechner, Majumder, Mao, Cottrell & McAuley (2020).
"""
from __future__ import annotations

from torch import nn

from wninit.peers.skipinit import scale_branches

__all__ = ["rezero"]


def rezero(model: nn.Module) -> nn.Module:
    r"""Re-zero every residual branch of a plain network: `x + alpha * F(x)` with a learnable `alpha = 0`.

    ReZero is All You Need: Fast Convergence at Large Depth - Bachlechner, Majumder, Mao, Cottrell & McAuley (2020).

    $$
    x_{i+1} = x_i + \alpha_i F(x_i), \qquad \alpha_i = 0 \text{ at init}.
    $$

    NOTE: on these networks ReZero and SkipInit are the same transform (one scalar on the branch output);
    the papers differ in what they remove (LayerNorm for ReZero, BatchNorm for SkipInit), and SkipInit
    allows a nonzero start, ReZero does not.

    Examples:
        >>> model = wninit.models.WideResNet(16, 4, 10, norm="none")
        >>> wninit.peers.apply(model, "rezero")
    """
    return scale_branches(model, "rezero", 0.0)
