"""Weight normalization for Linear, Conv and ConvTranspose layers, whichever API holds it.

`w_u = g_u * v_u / ||v_u||` per normalized unit `u` (Salimans & Kingma 2016; docs/method.md §2.1). The unit is a
slice of the weight along `dim`: `dim=0` (the default of every API) is one output unit of a Linear or
Conv, but one *input* channel of a ConvTranspose, whose weight is `(C_in, C_out/groups, *k)`;
`dim=None` normalizes the whole weight as one unit. Every `dim` is read from the API that holds it
([`wn_dim`][wninit.weightnorm.access.wn_dim]). Three implementations are read and written through one API ([`wn_g`][wninit.weightnorm.access.wn_g],
[`wn_v`][wninit.weightnorm.access.wn_v], [`set_g_`][wninit.weightnorm.access.set_g_], [`set_v_`][wninit.weightnorm.access.set_v_]); the formula itself is [`wninit.weightnorm.formula.wn_weight`][]:

- `"wninit"`: this package's layers ([`WNLinear`][wninit.weightnorm.layers.WNLinear], [`WNConv2d`][wninit.weightnorm.layers.WNConv2d], [`WNConvTranspose1d`][wninit.weightnorm.layers.WNConvTranspose1d],
  ...), parameters `g` of shape `(units,)` and `v` of the weight's shape; what the suite's models use;
- `"torch"`: `torch.nn.utils.parametrizations.weight_norm` (the current PyTorch API);
- `"legacy"`: the deprecated `torch.nn.utils.weight_norm` (`weight_g`/`weight_v`), kept for
  users' existing models.
"""
from __future__ import annotations

import warnings

import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.weight_norm import WeightNorm as _LegacyWeightNorm  # the legacy API's hook class

from wninit.errors import UserError
from wninit.weightnorm.formula import _unit_shape, unit_norms, wn_weight
from wninit.weightnorm.layers import (WNConv1d, WNConv2d, WNConv3d, WNConvTranspose1d, WNConvTranspose2d, WNConvTranspose3d,
                        WNLinear, _WeightNormMixin, _WN_CLASS, twice_differentiable)

__all__ = [
    "APIS",
    "WNLinear",
    "WNConv1d",
    "WNConv2d",
    "WNConv3d",
    "WNConvTranspose1d",
    "WNConvTranspose2d",
    "WNConvTranspose3d",
    "layer_kind",
    "weight_norm",
    "wn_api",
    "wn_dim",
    "is_weight_normed",
    "wn_g",
    "wn_v",
    "wn_parameters",
    "unit_norms",
    "set_g_",
    "set_v_",
    "effective_weight",
    "weight_normed_layers",
    "gain_parameters",
    "twice_differentiable",
]

APIS = ("wninit", "torch", "legacy")
_SUPPORTED = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


def layer_kind(layer: nn.Module) -> str | None:
    """The torch layer kind of `layer` (`"Linear"`, `"ConvTranspose1d"`, ...), WN or not; None for others."""
    for kind in _SUPPORTED:
        if isinstance(layer, kind):
            return kind.__name__
    return None


def _legacy_hook(layer: nn.Module):
    for hook in layer._forward_pre_hooks.values():
        if isinstance(hook, _LegacyWeightNorm) and hook.name == "weight":
            return hook
    return None


def wn_api(layer: nn.Module) -> str | None:
    """Which weight-norm API wraps `layer`'s weight: `"wninit"`, `"torch"`, `"legacy"` or None."""
    if isinstance(layer, _WeightNormMixin) and "v" in layer._parameters:
        return "wninit"
    if parametrize.is_parametrized(layer, "weight"):
        if any(type(p).__name__ == "_WeightNorm" for p in layer.parametrizations.weight):
            return "torch"
        return None
    if _legacy_hook(layer) is not None:
        return "legacy"
    return None


def is_weight_normed(layer: nn.Module) -> bool:
    """True when `layer` is a Linear/Conv/ConvTranspose whose weight is weight-normalized by any supported API."""
    return wn_api(layer) is not None


def _check_dim(dim, layer: nn.Module) -> int | None:
    """`dim` as a weight dimension of `layer` (None: the whole weight), or one sentence on what is wrong."""
    rank = 2 if isinstance(layer, nn.Linear) else 2 + len(layer.kernel_size)
    if dim is None or (isinstance(dim, int) and not isinstance(dim, bool) and 0 <= dim < rank):
        return dim
    raise UserError(f"weight-norm dim must be a dimension 0..{rank - 1} of this {type(layer).__name__}'s "
                     f"weight or None for the whole weight, got {dim!r}")


def weight_norm(layer: nn.Module, api: str = "wninit", dim: int | None = 0) -> nn.Module:
    """Wrap one Linear, Conv{1,2,3}d or ConvTranspose{1,2,3}d layer with weight norm, in place, preserving its function.

    `g` is set to `||v||` with `v` the current weight, so the output is unchanged (as PyTorch does).
    For a whole model (every layer, BatchNorm removed), use [`wninit.weight_norm`][wninit.weightnorm.convert.weight_norm].

    Args:
        layer: an `nn.Linear`, `nn.Conv{1,2,3}d` or `nn.ConvTranspose{1,2,3}d` not yet weight-normalized.
        api: `"wninit"` (this package's layer), `"torch"` (parametrizations) or `"legacy"`.
        dim: the weight dim whose slices get one `g` each, as in torch (0: output units of a Linear or
            Conv, input channels of a ConvTranspose); None normalizes the whole weight.

    Examples:
        >>> layer = weight_norm(nn.Linear(3, 4))
        >>> wn_api(layer)
        'wninit'
    """
    if api not in APIS:
        raise UserError(f"unknown weight-norm api {api!r}: choose one of {', '.join(map(repr, APIS))}")
    if not isinstance(layer, _SUPPORTED):
        raise UserError(f"weight norm wraps nn.Linear or nn.Conv1d/2d/3d or nn.ConvTranspose1d/2d/3d layers, got {type(layer).__name__}")
    if is_weight_normed(layer):
        raise UserError(f"this {type(layer).__name__} is already weight-normalized (api {wn_api(layer)!r})")
    dim = _check_dim(dim, layer)
    if api == "torch":
        torch.nn.utils.parametrizations.weight_norm(layer, name="weight", dim=dim)
    elif api == "legacy":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            torch.nn.utils.weight_norm(layer, name="weight", dim=dim)
    else:
        wn_class = _WN_CLASS.get(type(layer))
        if wn_class is None:
            raise UserError(f"api 'wninit' wraps exact nn.Linear/Conv/ConvTranspose layers, not the subclass {type(layer).__name__}; use api='torch'")
        layer.__class__ = wn_class
        layer._convert_to_weight_norm(dim)
    _direct_zero_units(layer, api, dim)
    return layer


def _direct_zero_units(layer: nn.Module, api: str, dim: int | None) -> None:
    """Give every unit wrapped with `g = ||w_u|| = 0` a defined direction (`zero_units_directed`), in place."""
    _, g, v = wn_parameters(layer, api)
    if g.device.type == "meta":  # shapes without values (a model built on the meta device): nothing to read
        return
    current = v.detach()
    directed = zero_units_directed(current, g.detach(), dim)  # g = ||v_u|| at wrapping: no second pass over v
    if directed is current:
        return
    with torch.no_grad():
        v.copy_(directed)
    if api == "legacy":
        _refresh_legacy(layer)


def zero_units_directed(v: torch.Tensor, norms: torch.Tensor, dim: int | None) -> torch.Tensor:
    """`v` with every unit whose norm (`norms`, one per unit) is 0 set to the constant unit direction
    `1/sqrt(n_u)`; `v` itself when there is none.

    A zero unit (a zero-initialized head) wrapped with `g = ||w_u|| = 0` would compute `0 * 0/0`, NaN,
    under every API. With this direction it computes `w_u = 0` as before, its gradients are finite, and
    `g_u` learns along it; no random number is drawn (docs/lifecycle.md, "A zero weight").
    """
    zero = norms.reshape(-1) == 0
    if not zero.any():
        return v
    return torch.where(_unit_shape(zero, v, dim), v.new_full((), (v.numel() // zero.numel()) ** -0.5), v)


def wn_parameters(layer: nn.Module, api: str | None = None) -> tuple[str, torch.Tensor, torch.Tensor]:
    """`(api, g, v)` of a weight-normalized layer in one lookup: the API's name and its raw parameters
    (`g` in the API's own shape, e.g. `(C_out, 1, 1, 1)` for torch's). For code that writes both in
    place under `torch.no_grad()`, as `initialize` does on 10,000-layer nets; the legacy API then needs
    [`set_v_`][wninit.weightnorm.access.set_v_] to refresh its cached weight. `api`: the layer's [`wn_api`][wninit.weightnorm.access.wn_api], when the
    caller has it already (the lookup is then skipped). Which dim `g` runs along: [`wn_dim`][wninit.weightnorm.access.wn_dim]."""
    api = api or wn_api(layer)
    if api == "wninit":
        params = layer._parameters  # direct: initialize() calls this for every layer of 10,000-layer nets
        return api, params["g"], params["v"]
    if api == "torch":
        return api, layer.parametrizations.weight.original0, layer.parametrizations.weight.original1
    if api == "legacy":
        return api, layer.weight_g, layer.weight_v
    raise UserError(f"{type(layer).__name__} is not weight-normalized: wrap it first with wninit.weight_norm(layer)")


def wn_dim(layer: nn.Module, api: str | None = None) -> int | None:
    """The weight dim along which `layer` has one `g` per slice (its normalized units), None for the whole weight.

    Read from the API: the wninit layer's `wn_dim`, the torch parametrization's `dim`, the legacy
    hook's `dim`; torch stores `dim=None` as `-1`, read back here as None.

    Examples:
        >>> wn_dim(weight_norm(nn.ConvTranspose1d(4, 8, 3), "torch"))  # torch's default: per input channel
        0
    """
    api = api or wn_api(layer)
    if api == "wninit":
        return layer.wn_dim
    if api == "torch":
        dim = next(p for p in layer.parametrizations.weight if type(p).__name__ == "_WeightNorm").dim
    elif api == "legacy":
        dim = _legacy_hook(layer).dim
    else:
        raise UserError(f"{type(layer).__name__} is not weight-normalized: wrap it first with wninit.weight_norm(layer)")
    if dim == -1:
        return None
    rank = wn_parameters(layer, api)[2].dim()
    if not 0 <= dim < rank:  # torch reads a negative dim other than -1 as another unit than Python would
        raise UserError(f"this {type(layer).__name__} is weight-normalized over dim={dim}: wninit reads dims 0..{rank - 1} "
                         "or -1/None (the whole weight); wrap it again with a non-negative dim")
    return dim


def wn_g(layer: nn.Module) -> torch.Tensor:
    """The gains `g` of a weight-normalized layer, one per normalized unit: a `(units,)` view of its parameter.

    Under any API (`wninit`'s `g`, torch's `original0`, the legacy `weight_g`); the units run along
    [`wn_dim`][wninit.weightnorm.access.wn_dim]. Named for the paper's `g` of `w = g v/||v||`, not `torch.nn.init.calculate_gain`'s
    multiplier.

    Examples:
        >>> wn_g(weight_norm(nn.Linear(3, 4), "torch")).shape
        torch.Size([4])
    """
    return wn_parameters(layer)[1].view(-1)


def wn_v(layer: nn.Module) -> torch.Tensor:
    """The direction parameter `v` of a weight-normalized layer, under any API (the weight's shape).

    Examples:
        >>> wn_v(weight_norm(nn.Conv2d(3, 8, 3))).shape
        torch.Size([8, 3, 3, 3])
    """
    return wn_parameters(layer)[2]


def _refresh_legacy(layer: nn.Module) -> None:
    # The legacy API caches w in layer.weight and recomputes it only in a forward pre-hook: recompute it
    # now so that reading layer.weight right after an init gives the new weight.
    hook = _legacy_hook(layer)
    if hook is not None:
        setattr(layer, hook.name, hook.compute_weight(layer))


def set_g_(layer: nn.Module, value: torch.Tensor | float) -> torch.Tensor:
    """Fill the gains `g` of a weight-normalized layer with `value`, in place; returns them as [`wn_g`][wninit.weightnorm.access.wn_g] does.

    Args:
        layer: a layer weight-normalized under any API.
        value: one number for every unit, or one per normalized unit ([`wn_dim`][wninit.weightnorm.access.wn_dim]), any shape with that
            many elements.

    Examples:
        >>> set_g_(weight_norm(nn.Linear(3, 2)), torch.tensor([1.0, 2.0]))
        tensor([1., 2.], grad_fn=<ViewBackward0>)
    """
    api, g, _ = wn_parameters(layer)
    with torch.no_grad():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            g.fill_(value)  # one op: the common case (a scheme's gain for the whole layer)
        else:
            g.copy_(torch.as_tensor(value, dtype=g.dtype, device=g.device).expand(g.numel()).view_as(g))
    if api == "legacy":
        _refresh_legacy(layer)
    return g.view(-1)


def set_v_(layer: nn.Module, value: torch.Tensor) -> torch.Tensor:
    """Copy `value` (the weight's shape) into the direction `v` of a weight-normalized layer; returns `v`.

    Examples:
        >>> v = set_v_(weight_norm(nn.Linear(4, 3)), torch.eye(3, 4))
    """
    api, _, v = wn_parameters(layer)
    with torch.no_grad():
        v.copy_(value)
    if api == "legacy":
        _refresh_legacy(layer)
    return v


def effective_weight(layer: nn.Module) -> torch.Tensor:
    """The weight the layer computes with: `g*v/||v||` for a WN layer ([`wninit.weightnorm.formula.wn_weight`][],
    by plain autograd ops), `weight` otherwise."""
    if not is_weight_normed(layer):
        return layer.weight
    _, g, v = wn_parameters(layer)
    return wn_weight(v, g, wn_dim(layer), fused=False)


def weight_normed_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """`(name, layer)` for every weight-normalized layer of `model`, in registration order."""
    return [(name, m) for name, m in model.named_modules() if is_weight_normed(m)]


def gain_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The `g` parameters of every weight-normalized layer (for e.g. exempting them from weight decay)."""
    return [wn_parameters(m)[1] for _, m in weight_normed_layers(model)]
