"""LSUV: orthogonal init, then each layer's weight rescaled until its output has unit variance on a batch.

All you need is a good init - Mishkin & Matas (2016).
"""
from __future__ import annotations

import warnings

import torch
from torch import nn

from wninit.errors import UserError
from wninit.structure.hooks import forward_with_hooks
from wninit.peers._graph import EXAMPLE_INPUTS, check_plain

__all__ = ["lsuv", "forward_order"]


class _Stop(Exception):
    """Raised by a hook once the layer of interest has run: the rest of the forward pass is not needed."""


def forward_order(model: nn.Module, layers: list[tuple[str, nn.Module]], batch) -> list[str]:
    """The names of `layers` in the order a forward pass on `batch` first calls them (unused ones left out)."""
    order: list[str] = []
    forward_with_hooks(model, batch, [(m, lambda m, i, o, name=name: order.append(name) if name not in order else None)
                                      for name, m in layers])
    return order


def _output_variance(model: nn.Module, layer: nn.Module, batch) -> float:
    seen = []

    def grab(_m, _i, out):
        seen.append(float(out.detach().double().var()))
        raise _Stop

    try:
        forward_with_hooks(model, batch, [(layer, grab)])
    except _Stop:
        pass
    return seen[0]


def lsuv(model: nn.Module, *, batch=None, tol: float = 0.01, max_iter: int = 10,
         generator: torch.Generator | None = None) -> nn.Module:
    r"""Layer-sequential unit-variance init: orthogonal weights, then `W_l <- W_l / sqrt(Var(B_l))` per layer.

    All you need is a good init - Mishkin & Matas (2016), Algorithm 1.

    Each Linear/Conv gets an orthogonal weight (`torch.nn.init.orthogonal_`) and bias 0; then, in the order a
    forward pass calls them, each layer's output `B_l` on `batch` is measured and

    $$
    W_l \leftarrow \frac{W_l}{\sqrt{\mathrm{Var}(B_l)}} \quad \text{until} \quad |\mathrm{Var}(B_l) - 1| < \mathrm{tol}
    $$

    (at most `max_iter` times; later layers see the already rescaled ones).

    Args:
        model: a plain network.
        batch: the inputs the variances are measured on (the paper: one mini-batch): a tensor, a tuple of
            positional arguments or a dict of keyword arguments; by default the `example_inputs` given to
            `wninit.peers.apply`.
        tol: `Tol_var` (the paper's 0.1; 0.01 here, which one rescaling of a bias-free layer already meets).
        max_iter: `T_max`, the paper's 10.
        generator: the random stream of the orthogonal draws.

    Examples:
        >>> model = wninit.models.MLP(784, 128, depth=20, num_classes=10, norm="none")
        >>> wninit.peers.apply(model, "lsuv", batch=torch.randn(128, 784))
    """
    if batch is None:
        batch = EXAMPLE_INPUTS.get()
    if batch is None:
        raise UserError("peer 'lsuv' measures each layer's output variance on a batch: pass batch=x "
                        "(one mini-batch of inputs) or example_inputs=x")
    if not (isinstance(tol, (int, float)) and tol > 0) or not (isinstance(max_iter, int) and max_iter >= 1):
        raise UserError(f"peer 'lsuv' needs tol > 0 and an integer max_iter >= 1, got tol={tol!r}, max_iter={max_iter!r}")
    layers = check_plain(model, "lsuv")
    with torch.no_grad():
        for _, layer in layers:
            nn.init.orthogonal_(layer.weight, generator=generator)
            if layer.bias is not None:
                layer.bias.zero_()
    modules = dict(layers)
    for name in forward_order(model, layers, batch):
        layer = modules[name]
        for _ in range(max_iter):
            var = _output_variance(model, layer, batch)
            if var == 0.0:
                warnings.warn(f"lsuv: layer {name!r} outputs zeros on the batch; its weight is left orthogonal",
                              stacklevel=2)
                break
            if abs(var - 1.0) < tol:
                break
            with torch.no_grad():
                layer.weight.div_(var ** 0.5)
    return model
