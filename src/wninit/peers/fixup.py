"""Fixup: residual networks trained without normalization by rescaling their init.

Fixup Initialization: Residual Learning Without Normalization - Zhang, Dauphin & Ma (2019).
"""
from __future__ import annotations

import torch
from torch import nn

from wninit.peers._graph import branches, head_name, plain_layers, plain_structure, replace_module

__all__ = ["fixup", "fixup_scale", "FixupLayer", "he_normal_"]


def fixup_scale(num_branches: int, branch_layers: int) -> float:
    r"""The factor on every layer of a residual branch but its last: `L^(-1/(2m-2))`.

    Fixup Initialization: Residual Learning Without Normalization - Zhang, Dauphin & Ma (2019), section 3, rule 2.

    $$
    s = L^{-\frac{1}{2m-2}}
    $$

    with `L` the number of residual branches and `m` the layers of this branch; a one-layer branch has no
    layer to scale (its only layer is zeroed), so 1.

    Examples:
        >>> fixup_scale(27, 2)  # ResNet-56: 27 branches of 2 convs
        0.19245008972987526
    """
    if branch_layers <= 1:
        return 1.0
    return float(num_branches) ** (-1.0 / (2 * branch_layers - 2))


def he_normal_(layer: nn.Module, generator: torch.Generator | None = None) -> None:
    """He et al.'s normal init, `N(0, 2/fan_in)`, bias 0 (Fixup's "standard method")."""
    # NOTE: a transposed conv's weight is (in, out, k): its fan-in is torch's "fan_out" of that tensor.
    mode = "fan_out" if getattr(layer, "transposed", False) else "fan_in"
    with torch.no_grad():
        nn.init.kaiming_normal_(layer.weight, mode=mode, nonlinearity="relu", generator=generator)
        if layer.bias is not None:
            layer.bias.zero_()


class FixupLayer(nn.Module):
    """`scale * layer(x + bias_in) + bias_out`: Fixup's scalar biases around a layer, and its multiplier."""

    def __init__(self, layer: nn.Module, multiplier: bool = False, bias_out: bool = True):
        super().__init__()
        self.layer = layer
        like = layer.weight
        self.bias_in = nn.Parameter(like.new_zeros(()))
        self.bias_out = nn.Parameter(like.new_zeros(())) if bias_out else None
        self.scale = nn.Parameter(like.new_ones(())) if multiplier else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.layer(x + self.bias_in)
        if self.scale is not None:
            y = self.scale * y
        return y if self.bias_out is None else y + self.bias_out


def fixup(model: nn.Module, *, generator: torch.Generator | None = None, zero_head: bool = True) -> nn.Module:
    r"""Initialize a plain residual network by Fixup and add its scalar biases and multipliers.

    Fixup Initialization: Residual Learning Without Normalization - Zhang, Dauphin & Ma (2019).

    Every layer is drawn by He et al.'s rule; then, per discovered residual branch of `m` layers,

    $$
    W_j \leftarrow L^{-\frac{1}{2m-2}} W_j \quad (j < m), \qquad W_m = 0,
    $$

    with `L` the number of branches, and the classifier (the discovered head) is zero. Each branch layer
    becomes `layer(x + a) + b` (scalar biases, 0), the branch's last `c * layer(x + a) + b` (multiplier
    `c` = 1), the head `head(x + a)`.

    Args:
        model: a plain network with residual branches (found by [`wninit.structure.trace.discover`][]).
        generator: the random stream of the He draws.
        zero_head: zero the classifier, as the paper (rule 1).

    Examples:
        >>> model = wninit.models.ResNet(56, 10, norm="none")
        >>> wninit.peers.apply(model, "fixup")
    """
    s = plain_structure(model, "fixup")
    found = branches(s, "fixup")
    for _, layer in plain_layers(model):
        he_normal_(layer, generator)
    head = head_name(s) if zero_head else None
    with torch.no_grad():
        for b in found:
            scale = fixup_scale(len(found), len(b.layers))
            for name in b.layers[:-1]:
                model.get_submodule(name).weight.mul_(scale)
            model.get_submodule(b.end).weight.zero_()
        if head is not None:
            layer = model.get_submodule(head)
            layer.weight.zero_()
            if layer.bias is not None:
                layer.bias.zero_()
    for b in found:
        for name in b.layers:
            replace_module(model, name, FixupLayer(model.get_submodule(name), multiplier=name == b.end))
    if head is not None:
        replace_module(model, head, FixupLayer(model.get_submodule(head), bias_out=False))
    return model
