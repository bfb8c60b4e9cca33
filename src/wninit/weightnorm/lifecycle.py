"""A weight-normalized model after its initialization: switch its API, fold it for inference, copy it.

- [`switch_api`][wninit.weightnorm.lifecycle.switch_api] moves every layer's `g` and `v` to another API, bit for bit;
- [`remove_weight_norm`][wninit.weightnorm.lifecycle.remove_weight_norm] folds `g * v/||v||` into plain weights (in float64, rounded once) under any
  API, where torch's own removals each handle one API only; [`wninit.weight_norm`][wninit.weightnorm.convert.weight_norm] is its inverse;
- [`copyable`][wninit.weightnorm.lifecycle.copyable] / [`copy_model`][wninit.weightnorm.lifecycle.copy_model]: `copy.deepcopy` (and so `AveragedModel`, EMA) refuses a
  model with the legacy API, whose cached weight is a non-leaf tensor; these make it copy.
"""
from __future__ import annotations

import copy
from contextlib import contextmanager

import torch
from torch import nn
from torch.nn.utils import parametrize

from wninit.weightnorm.state_dict import fold
from wninit.errors import UserError
from wninit.weightnorm.access import APIS, _legacy_hook, set_g_, set_v_, weight_normed_layers, wn_api, wn_dim, wn_parameters
from wninit.weightnorm.access import weight_norm as _wrap_layer
from wninit.weightnorm.layers import _WN_CLASS

__all__ = ["switch_api", "remove_weight_norm", "copyable", "copy_model"]

_PLAIN_CLASS = {wn: plain for plain, wn in _WN_CLASS.items()}


def _wn_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Every weight-normalized layer, after one sentence for what cannot be moved exactly."""
    layers = weight_normed_layers(model)
    if not layers:
        raise UserError(f"this {type(model).__name__} has no weight-normalized layer: wrap it first with "
                        "wninit.weight_norm(model)")
    for name, layer in layers:
        if wn_api(layer) == "wninit" and type(layer) not in _PLAIN_CLASS:
            raise UserError(f"layer {name or type(layer).__name__!r} subclasses a wninit layer, which has no plain "
                            "torch class to return to; switch or fold its parent class's layers only")
        if wn_api(layer) == "torch" and len(layer.parametrizations.weight) > 1:
            raise UserError(f"layer {name or type(layer).__name__!r} has parametrizations besides weight norm on its "
                            "weight; remove those first (torch.nn.utils.parametrize.remove_parametrizations)")
        wn_dim(layer)  # one sentence for a dim wninit cannot read
    return layers


def _own_class(layer: nn.Module) -> None:
    """Give a parametrized layer a class of its own, a sibling of the one torch made for it.

    `copy.deepcopy` keeps the class torch made for the original module, and removing a parametrization
    deletes the `weight` property from that class: removed from a copy, the original (and every other
    copy) would lose its weight.
    """
    cls = type(layer)
    body = {k: v for k, v in cls.__dict__.items() if k not in ("__dict__", "__weakref__")}
    layer.__class__ = type(cls.__name__, cls.__bases__, body)


def _drop_compat_hooks(layer: nn.Module) -> None:
    """Remove the load-state-dict hook torch's parametrized weight norm registers and its removal leaves behind.

    The hook renames `weight_g`/`weight_v` keys to the parametrization's: left on a layer that has moved
    to the legacy API, it renames the layer's own keys away, and the model cannot load its own state dict.
    """
    hooks = layer._load_state_dict_pre_hooks
    for key in [k for k, h in hooks.items() if _is_compat_hook(getattr(h, "hook", h))]:
        del hooks[key]


def _is_compat_hook(fn) -> bool:
    return (getattr(fn, "__module__", None) == torch.nn.utils.parametrizations.__name__
            and getattr(fn, "__name__", None) == "_weight_norm_compat_hook")


def _strip(layer: nn.Module, weight: torch.Tensor) -> None:
    """Remove weight norm from `layer` under its API, leaving `weight` as its plain parameter."""
    api, _, v = wn_parameters(layer)
    requires_grad = v.requires_grad
    if api == "wninit":
        del layer._parameters["g"], layer._parameters["v"]
        layer.__dict__.pop("wn_dim", None)
        layer.__class__ = _PLAIN_CLASS[type(layer)]
    elif api == "torch":
        _own_class(layer)
        parametrize.remove_parametrizations(layer, "weight", leave_parametrized=True)
        del layer._parameters["weight"]
        _drop_compat_hooks(layer)
    else:
        torch.nn.utils.remove_weight_norm(layer)
        del layer._parameters["weight"]
    layer.weight = nn.Parameter(weight, requires_grad=requires_grad)


def remove_weight_norm(model: nn.Module) -> nn.Module:
    r"""Fold every weight-normalized layer's `g` and `v` into a plain `weight`, in place, under any API.

    Weight normalization - Salimans & Kingma (2016):

    $$
    w_u = g_u \, v_u / \lVert v_u \rVert
    $$

    computed in float64 and rounded once to the parameter's dtype, so the plain model computes what the
    weight-normalized one did to that dtype's rounding, and the same weights on every device. The layers
    become plain `nn.Linear`/`nn.Conv*`; `wninit.weight_norm(model)` wraps them again with
    `g = ||w_u||`. The parameters are new tensors: build the optimizer after this call.

    Args:
        model: a model (or one layer) with weight-normalized layers under any mix of the three APIs.

    Returns:
        `model`, changed in place.

    Examples:
        >>> model = remove_weight_norm(model.eval())  # for inference or export
    """
    for _, layer in _wn_layers(model):
        _, g, v = _wn_read(layer)
        _strip(layer, fold(g, v, wn_dim(layer)))
    return model


def _wn_read(layer: nn.Module) -> tuple[str, torch.Tensor, torch.Tensor]:
    api, g, v = wn_parameters(layer)
    return api, g.detach().clone(), v.detach().clone()


def switch_api(model: nn.Module, to: str) -> nn.Module:
    """Move every weight-normalized layer of `model` to the weight-norm API `to`, in place, bit for bit.

    Each layer keeps its `g`, `v` and `dim`, so its effective weight `g * v/||v||` is unchanged;
    layers already under `to` are left as they are. The moved parameters are new tensors: build the
    optimizer after this call. For a state dict rather than a model: [`wninit.convert_state_dict`][wninit.weightnorm.state_dict.convert_state_dict].

    Args:
        model: a model (or one layer) with weight-normalized layers under any mix of the three APIs.
        to: `"wninit"` (this package's layers), `"torch"` (parametrizations) or `"legacy"`.

    Returns:
        `model`, changed in place.

    Examples:
        >>> switch_api(hifigan_generator, "torch")  # off the deprecated torch.nn.utils.weight_norm
    """
    if to not in APIS:
        raise UserError(f"unknown weight-norm api {to!r}: choose one of {', '.join(map(repr, APIS))} "
                        "(to fold weight norm away, call wninit.remove_weight_norm)")
    layers = [(n, m) for n, m in _wn_layers(model) if wn_api(m) != to]
    if to == "wninit":  # every check before the first change
        subclassed = [n or type(m).__name__ for n, m in layers if _base(m) not in _WN_CLASS]
        if subclassed:
            more = f" and {len(subclassed) - 1} more" if len(subclassed) > 1 else ""
            raise UserError(f"api 'wninit' has layers for exact torch layers only, and {subclassed[0]!r}{more} are "
                            "subclasses: switch to 'torch' instead")
    for _, layer in layers:
        _, g, v = _wn_read(layer)
        frozen = [not p.requires_grad for p in wn_parameters(layer)[1:]]
        dim = wn_dim(layer)
        _strip(layer, fold(g, v, dim))
        _wrap_layer(layer, to, dim)
        set_v_(layer, v)
        set_g_(layer, g.reshape(-1))
        for param, was_frozen in zip(wn_parameters(layer)[1:], frozen):
            param.requires_grad_(not was_frozen)  # a frozen g (or v) stays frozen
    return model


def _base(layer: nn.Module) -> type:
    """The layer's class before weight norm (a torch parametrization swaps in a subclass of it)."""
    cls = type(layer)
    return cls.__bases__[0] if wn_api(layer) == "torch" else cls


@contextmanager
def copyable(model: nn.Module):
    """Inside, `copy.deepcopy(model)` works under every weight-norm API, so `AveragedModel` (EMA, SWA) does.

    The legacy API keeps its computed weight as a plain attribute with a graph behind it, which
    `deepcopy` refuses; inside, that cache is detached (it is recomputed at every forward), and it is put
    back on exit. A copy is independent: its own `g` and `v`, nothing shared with `model`. With torch's
    parametrizations a deepcopy shares its class with the original, and removing the parametrization from
    one then breaks the other; on exit, the original's layers move to classes of their own.

    Examples:
        >>> with copyable(model):
        ...     ema = torch.optim.swa_utils.AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.999))
    """
    cached = []
    for layer in model.modules():
        hook = _legacy_hook(layer)
        weight = layer.__dict__.get(hook.name) if hook is not None else None
        if isinstance(weight, torch.Tensor) and not weight.is_leaf:
            cached.append((layer, hook.name, weight))
            setattr(layer, hook.name, weight.detach())
    try:
        yield model
    finally:
        for layer, name, weight in cached:
            setattr(layer, name, weight)
        for layer in model.modules():
            if parametrize.is_parametrized(layer):
                _own_class(layer)  # the copies keep torch's class, the original leaves it


def copy_model(model: nn.Module) -> nn.Module:
    """`copy.deepcopy(model)` that works under every weight-norm API (see [`copyable`][wninit.weightnorm.lifecycle.copyable]).

    Examples:
        >>> frozen = copy_model(model)
    """
    with copyable(model):
        return copy.deepcopy(model)
