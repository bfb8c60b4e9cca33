"""NF-ResNets: scaled weight standardization and branches that read `x/beta` and add `alpha` times their output.

Characterizing signal propagation to close the performance gap in unnormalized ResNets - Brock, De & Smith (2021).
"""
from __future__ import annotations

import math
import warnings

import torch
from torch import nn
from torch.nn.utils import parametrize

from wninit.peers._graph import (InputScale, ScaledBranch, activation_variance, branches, head_name, plain_layers,
                     plain_structure, preceding_activations, replace_module)

__all__ = ["nf", "Standardized", "standardize_layer_", "standardize", "expected_stream_variances", "RELU_GAIN"]

RELU_GAIN = math.sqrt(2.0 / (1.0 - 1.0 / math.pi))  # 1 / std of ReLU(z), z ~ N(0, 1)
_EPS = 1e-4  # as the paper's code: max(var * fan_in, eps) under the square root


def standardize(weight: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
    r"""Scaled weight standardization of `weight` (rows = output units).

    Characterizing signal propagation to close the performance gap in unnormalized ResNets - Brock, De & Smith (2021).

    $$
    \hat W_{ij} = \gamma \frac{W_{ij} - \mu_i}{\sigma_i \sqrt{N}}
    $$

    with `mu_i`, `sigma_i` the mean and (population) std of row `i` and `N` its fan-in.

    Examples:
        >>> w = standardize(torch.randn(8, 16), gain=RELU_GAIN)
    """
    flat = weight.flatten(1)
    mean = flat.mean(dim=1, keepdim=True)
    var = flat.var(dim=1, unbiased=False, keepdim=True)
    scale = torch.rsqrt(torch.clamp(var * flat.size(1), min=_EPS))
    return ((flat - mean) * scale * gain).view_as(weight)


class Standardized(nn.Module):
    """A weight parametrization: `gain * gamma * standardize(W)`, `gain` learnable per unit (1 at init).

    Registered with `torch.nn.utils.parametrize`, so the layer keeps its own forward (padding, subclasses).
    """

    def __init__(self, weight: torch.Tensor, gamma: float):
        super().__init__()
        self.gamma = float(gamma)
        self.gain = nn.Parameter(weight.new_ones((weight.size(0),) + (1,) * (weight.dim() - 1)))

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return self.gain * standardize(weight, self.gamma)


def standardize_layer_(layer: nn.Module, gamma: float) -> nn.Module:
    """Make `layer` use scaled weight standardization with `gamma` (in place); returns the layer."""
    parametrize.register_parametrization(layer, "weight", Standardized(layer.weight, gamma))
    return layer


def expected_stream_variances(found, alpha: float) -> tuple[list[float], list[float]]:
    r"""`(beta_i^2, var after sum i)` per branch: `Var(x_{i+1}) = Var(x_i) + alpha^2`, reset to `1 + alpha^2` by a
    projection that reads `x/beta` (a transition block); a stream not produced by a known sum starts at 1."""
    var_of, before, after = {}, [], []
    for b in found:
        v = var_of.get(b.sum.stream, 1.0)
        out = (1.0 if b.projection is not None else v) + alpha * alpha
        var_of[b.sum.node] = out
        before.append(v)
        after.append(out)
    return before, after


def nf(model: nn.Module, *, alpha: float = 0.2) -> nn.Module:
    r"""Make a plain residual network normalizer-free in the NF-ResNet way.

    Characterizing signal propagation to close the performance gap in unnormalized ResNets - Brock, De & Smith (2021).

    Every Conv/Linear but the classifier uses scaled weight standardization (`standardize`) with
    `gamma = 1/std(phi(z))` for the activation `phi` it reads (ReLU: `sqrt(2/(1 - 1/pi))`), else 1;
    each residual block becomes

    $$
    x_{i+1} = x_i + \alpha f_i(x_i/\beta_i), \qquad \beta_i = \sqrt{\mathrm{Var}(x_i)},
    \quad \mathrm{Var}(x_{i+1}) = \mathrm{Var}(x_i) + \alpha^2,
    $$

    with a projection shortcut reading `x_i/beta_i` too (so the variance restarts at `1 + alpha^2`).
    `1/beta` is applied where the branch's layers read the stream: exact through positively homogeneous
    activations (ReLU), which the paper's blocks use.

    Args:
        model: a plain network with residual branches.
        alpha: the rate at which the stream's variance grows per block (the paper's 0.2).

    Examples:
        >>> model = wninit.models.ResNet(56, 10, norm="none")
        >>> wninit.peers.apply(model, "nf", alpha=0.2)
    """
    s = plain_structure(model, "nf")
    found = branches(s, "nf")
    before, _ = expected_stream_variances(found, alpha)
    head = head_name(s)
    skipped, reads = [], preceding_activations(s)
    for name, layer in plain_layers(model):
        if name == head:
            continue
        if getattr(layer, "transposed", False):
            skipped.append(name)
            continue
        act = reads.get(name)
        standardize_layer_(layer, 1.0 if act is None else 1.0 / math.sqrt(activation_variance(act)))
    if skipped:
        warnings.warn(f"nf: the transposed convolution(s) {', '.join(skipped)} are not weight-standardized", stacklevel=2)
    for b, var in zip(found, before):
        beta = math.sqrt(var)
        if not b.entries:
            warnings.warn(f"nf: no layer of the branch ending in {b.end!r} reads the stream directly, so it is "
                          "not divided by beta", stacklevel=2)
        replace_module(model, b.end, ScaledBranch(model.get_submodule(b.end), alpha, learnable=False))
        for name in set(b.entries) | ({b.projection} if b.projection else set()):
            replace_module(model, name, InputScale(model.get_submodule(name), beta))
    return model
