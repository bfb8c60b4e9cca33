"""Move a state dict's weight-norm parameters between the three APIs, or fold them into plain weights.

A layer's `g` and `v` are stored under three key layouts (`docs/method.md §2.1` defines
`w_u = g_u v_u / ||v_u||`):

- `"legacy"` (`torch.nn.utils.weight_norm`): `<layer>.weight_g`, `<layer>.weight_v`, `g` shaped
  like the weight with one size-1 axis everywhere but the normalized `dim` (a 0-d tensor for `dim=None`);
- `"torch"` (`torch.nn.utils.parametrizations.weight_norm`): `<layer>.parametrizations.weight.original0`
  and `original1`, the same shapes;
- `"wninit"` (this package's layers): `<layer>.g` of shape `(units,)` and `<layer>.v`.

Only `g`'s shape moves between the first three, so the effective weights stay bit for bit what they were.
`"plain"` folds `g` and `v` into `<layer>.weight`, computed in float64 and rounded once. With a model
as the target, every layer takes that model's layout (its API and `dim`, plain where it has no weight
norm) and the result is checked against the model's keys and shapes.
"""
from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Mapping

import torch
from torch import nn

from wninit.errors import UserError
from wninit.weightnorm.access import APIS, is_weight_normed, layer_kind, wn_api, wn_dim, zero_units_directed
from wninit.weightnorm.formula import _unit_shape, unit_norms, wn_weight

__all__ = ["TARGETS", "convert_state_dict", "fold", "wn_layout"]

TARGETS = (*APIS, "plain")
_SUFFIX = {"legacy": ("weight_g", "weight_v"),
           "torch": ("parametrizations.weight.original0", "parametrizations.weight.original1"),
           "wninit": ("g", "v"), "plain": ("weight", None)}


def fold(g: torch.Tensor, v: torch.Tensor, dim: int | None = 0) -> torch.Tensor:
    r"""The plain weight `g * v/||v||` of a weight-normalized layer, computed in float64 and rounded once.

    $$
    w_u = g_u \, v_u / \lVert v_u \rVert
    $$

    Rounded once from float64, the result is the correctly rounded weight up to float64's own error, the
    same on every device, which the float32 kernels of the APIs are not (they differ in their last bits).

    Args:
        g: one gain per normalized unit, any shape with that many elements.
        v: the direction, the weight's shape.
        dim: the weight dim of the normalized units, None for the whole weight.

    A unit whose direction is all zero (a checkpoint made outside wninit: `0/0` under every API) has the
    constant unit direction wrapping a zero weight gives it (docs/lifecycle.md, "A zero weight"): its weight
    is `g_u/sqrt(n_u)` in every entry, 0 when `g_u` is 0, never NaN.

    Examples:
        >>> w = fold(layer.g, layer.v)
    """
    v64 = v.detach().double()
    v64 = zero_units_directed(v64, unit_norms(v64, dim), dim)
    return wn_weight(v64, g.detach().double(), dim, fused=False).to(v.dtype)


def wn_layout(model: nn.Module) -> dict[str, tuple[str, int | None]]:
    """`{key prefix: (api, dim)}` for every Linear/Conv/ConvTranspose of `model`; `("plain", None)` for the
    layers without weight norm. The prefix is the layer's name and a dot (`""` for the model itself)."""
    layout = {}
    for name, m in model.named_modules():
        if layer_kind(m) is None:
            continue
        prefix = f"{name}." if name else ""
        layout[prefix] = (wn_api(m), wn_dim(m)) if is_weight_normed(m) else ("plain", None)
    return layout


def _prefix(key: str, suffix: str) -> str | None:
    if key == suffix:
        return ""
    return key[:-len(suffix)] if key.endswith("." + suffix) else None


def _groups(state_dict: Mapping, layout: Mapping | None) -> dict[str, tuple[str, str, str | None]]:
    """`{prefix: (api, g key, v key)}` for each weight-normalized layer of `state_dict`, found by its keys.

    `<p>.g`/`<p>.v` are read as a wninit layer when `g` is one value per unit of `v`; with a model's
    `layout`, plain `<p>.weight` keys of its layers are taken too (to be weight-normalized).
    """
    groups = {}
    for key, value in state_dict.items():
        for api in APIS:
            g_suffix, v_suffix = _SUFFIX[api]
            prefix = _prefix(key, g_suffix)
            if prefix is None or prefix + v_suffix not in state_dict:
                continue
            if layout is not None and prefix not in layout:
                continue  # not a layer of the target model: left as it is, and reported as unexpected
            if api == "wninit" and not _wninit_pair(value, state_dict[prefix + v_suffix]):
                continue
            groups[prefix] = (api, key, prefix + v_suffix)
        prefix = _prefix(key, "weight")
        if layout is not None and prefix in layout and layout[prefix][0] != "plain" and prefix not in groups:
            groups[prefix] = ("plain", key, None)
    return groups


def _wninit_pair(g, v) -> bool:
    return (isinstance(g, torch.Tensor) and isinstance(v, torch.Tensor) and g.dim() == 1 and v.dim() >= 2
            and (g.numel() == 1 or g.numel() in v.shape))


def _unit_dims(api: str, g: torch.Tensor, v: torch.Tensor, g_key: str, v_key: str) -> list[int | None]:
    """The dims `g` can hold one gain per unit of (several when they mean the same), the API's default first."""
    units = g.numel()
    dims = [d for d in range(v.dim()) if v.shape[d] == units]
    if api != "wninit":  # g keeps the weight's rank, one size-1 axis but the normalized one; 0-d for dim None
        dims = [d for d in dims if tuple(g.shape) == tuple(v.shape[d] if i == d else 1 for i in range(v.dim()))]
    if units == 1 and (api == "wninit" or g.dim() == 0 or dims):
        dims = [None, *dims] if g.dim() == 0 else [*dims, None]
    if not dims:
        raise UserError(f"state dict key {g_key!r} has shape {tuple(g.shape)}, which is not one gain per unit of "
                        f"{v_key!r} of shape {tuple(v.shape)}: the checkpoint is damaged or not weight-normalized")
    return dims


def _emit(api: str, prefix: str, g: torch.Tensor, v: torch.Tensor, dim: int | None) -> dict[str, torch.Tensor]:
    """The state dict entries of one layer under `api`, from `g` of shape `(units,)`."""
    g_suffix, v_suffix = _SUFFIX[api]
    if api == "plain":
        return {prefix + g_suffix: fold(g, v, dim)}
    if api == "wninit":
        g = g.reshape(-1)
    else:
        g = g.reshape(()) if dim is None else _unit_shape(g.reshape(-1), v, dim)
    v = zero_units_directed(v, unit_norms(v.double(), dim), dim)  # a zero direction: the one wrapping gives
    return {prefix + g_suffix: g.clone(), prefix + v_suffix: v.clone()}


def _convert_layer(prefix, source, state_dict, target) -> dict[str, torch.Tensor]:
    api, g_key, v_key = source
    to_api, to_dim = target
    if api == "plain":  # a plain weight into a WN layer: g = ||w_u||, as wrapping a layer does
        w = state_dict[g_key]
        if to_dim is not None and not 0 <= to_dim < w.dim():
            raise UserError(f"state dict key {g_key!r} of shape {tuple(w.shape)} has no dim {to_dim} to normalize")
        return _wrapped(to_api, prefix, w, to_dim)
    g, v = state_dict[g_key], state_dict[v_key]
    dims = _unit_dims(api, g, v, g_key, v_key)
    to_dim = dims[0] if to_dim == "same" else to_dim
    if to_api == "plain" or to_dim in dims:  # the same units: g changes shape only
        return _emit(to_api, prefix, g, v, dims[0] if to_api == "plain" else to_dim)
    w = fold(g, v, dims[0])  # other units (the model normalizes along another dim): through the weight
    return _wrapped(to_api, prefix, w, to_dim)


def _wrapped(api: str, prefix: str, w: torch.Tensor, dim: int | None) -> dict[str, torch.Tensor]:
    """The entries of a plain weight `w` weight-normalized under `api`, as wrapping a layer does: `g = ||w_u||`,
    `v = w` (a zero unit's direction defined: `wninit.weightnorm.access.zero_units_directed`)."""
    g = unit_norms(w.double(), dim).to(w.dtype)
    return _emit(api, prefix, g, zero_units_directed(w, g, dim), dim)


def _check_fits(converted: Mapping, model: nn.Module) -> None:
    expected = model.state_dict()
    name = type(model).__name__
    missing = [k for k in expected if k not in converted]
    unexpected = [k for k in converted if k not in expected]
    for keys, what in ((missing, "misses the key"), (unexpected, "has the unexpected key")):
        if keys:
            more = f" (and {len(keys) - 1} more)" if len(keys) > 1 else ""
            raise UserError(f"the state dict {what} {keys[0]!r}{more} for this {name}: it was saved from another "
                            "architecture or configuration; build the model the checkpoint was saved from")
    for key, value in converted.items():
        want = expected[key]
        if isinstance(value, torch.Tensor) and isinstance(want, torch.Tensor) and value.shape != want.shape:
            raise UserError(f"state dict key {key!r} has shape {tuple(value.shape)} but this {name} needs "
                            f"{tuple(want.shape)}: build the model with the checkpoint's sizes")


def convert_state_dict(state_dict: Mapping[str, torch.Tensor], to: str | nn.Module) -> dict[str, torch.Tensor]:
    r"""A copy of `state_dict` with every weight-normalized layer's `g` and `v` under another API, or folded.

    Weight normalization - Salimans & Kingma (2016), as used by "How to Initialize your Network? Robust
    Initialization for WeightNorm & ResNets" - Arpit, Campos & Bengio (2019):

    $$
    w_u = g_u \, v_u / \lVert v_u \rVert
    $$

    Between `"legacy"`, `"torch"` and `"wninit"` only `g`'s shape changes, so each effective weight
    stays bit for bit the same; `"plain"` folds `w` in float64 and rounds once. The input is not changed.
    A wninit state dict does not record `dim`: read without a model, its `g` is taken along `dim=0`
    when it has `v.shape[0]` values, as every API's default. Keys of other modules pass through.

    Args:
        state_dict: a model's `state_dict()` (any of the three layouts, mixed, or plain weights).
        to: `"legacy"`, `"torch"`, `"wninit"` or `"plain"`; or a model, whose layout each layer takes
            (its API and `dim`; a plain weight, or one normalized along another `dim`, becomes
            `v = w`, `g = ||w_u||`, exact to float32 rounding), and whose keys and shapes the result must
            match (a `UserError` names the first that does not).

    Examples:
        >>> legacy = torch.load("g_02500000")["generator"]       # a HiFi-GAN checkpoint
        >>> model.load_state_dict(convert_state_dict(legacy, to=model))
    """
    if isinstance(to, nn.Module):
        layout = wn_layout(to)
    elif isinstance(to, str) and to in TARGETS:
        layout = None
    else:
        raise UserError(f"unknown weight-norm target {to!r}: choose one of {', '.join(map(repr, TARGETS))} "
                        "or pass a model")
    if not isinstance(state_dict, Mapping):
        raise UserError(f"expected a state dict (a mapping of names to tensors), got a {type(state_dict).__name__}")
    groups = _groups(state_dict, layout)
    owner = {k: p for p, (_, g_key, v_key) in groups.items() for k in (g_key, v_key) if k is not None}
    converted = {}
    for key, value in state_dict.items():
        prefix = owner.get(key)
        if prefix is None:
            converted[key] = value
        elif key == groups[prefix][1]:  # a layer's entries go where its g was
            target = layout[prefix] if layout is not None else (to, "same")
            converted.update(_convert_layer(prefix, groups[prefix], state_dict, target))
    if layout is not None:
        _check_fits(converted, to)
    metadata = getattr(state_dict, "_metadata", None)
    if metadata is not None:  # the modules' versions, which load_state_dict reads as torch.save keeps them
        converted = OrderedDict(converted)
        converted._metadata = copy.deepcopy(metadata)
    return converted
