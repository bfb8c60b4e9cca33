"""Model-level initialization schemes: the proposed one (spec §3.5) and every baseline of the paper (spec §4).

``initialize(model, scheme)`` walks the model's Linear/Conv layers in registration order, draws each
direction ``v`` from one generator (so a seed gives the same weights whichever weight-norm API holds
the layer), and sets ``g`` and ``b`` by the layer's declared role (:mod:`wninit.roles`). Orthogonal
directions are drawn for all layers first and their QRs run side by side on torch's threads
(:func:`wninit.init.orthogonal_directions_`): the same weights at any thread count, in less time than
``torch.nn.init.orthogonal_`` layer by layer when there are two threads or more.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .init import check_direction, direction_, fan_in_and_fan_out, orthogonal_directions_, proposed_gain
from .roles import Role, get_role
from .weightnorm import gain, is_weight_normed, set_direction_, set_gain_, wn_api, wn_parameters

__all__ = ["SCHEMES", "WN_SCHEMES", "PLAIN_SCHEMES", "LayerInit", "role_gamma", "initialize", "initialize_layer_"]

WN_SCHEMES = ("proposed", "proposed-backward", "pytorch-default", "datadep", "hanin")
PLAIN_SCHEMES = ("he", "orthogonal", "xavier")
SCHEMES = WN_SCHEMES + PLAIN_SCHEMES

# spec §3.6 item 6: Hanin & Rolnick's residual scale eta_b = 0.9^b, b = 1..B_k within each stage; on g
# it is the gamma 0.81^b of the block's last conv.
HANIN_DECAY = 0.9
_NUMPY_FLOAT = {torch.float32: np.float32, torch.float64: np.float64, torch.float16: np.float16}


@dataclass(frozen=True)
class LayerInit:
    """What ``initialize`` did to one layer. ``g`` is the mean gain (per-unit gains differ under datadep)."""
    name: str
    role: str
    fan_in: int
    fan_out: int
    gamma: float | None
    g: float | None


def _check_scheme(scheme: str) -> str:
    if scheme not in SCHEMES:
        raise ValueError(f"unknown scheme {scheme!r}: choose one of {', '.join(SCHEMES)}")
    return scheme


def role_gamma(role: Role, scheme: str = "proposed", stem_gamma: float | None = None) -> float:
    """gamma of ``g = sqrt(gamma*fan_in/fan_out)`` for a layer of this role (spec §3.5 table).

    A gamma the model declared (``set_role(..., gamma=)``) wins over the table. The stem's is 1 (no ReLU
    follows it, the reference ``WideResNet``) unless declared (``wninit.models.ResNet`` declares 2, as
    the reference ``ResNet`` class, spec §3.6 item 8); ``stem_gamma``, when given, overrides both.
    """
    if role.kind == "stem" and stem_gamma is not None:
        return stem_gamma
    if role.gamma is not None:
        return role.gamma
    if role.kind == "stem":
        return 1.0
    if role.kind in ("hidden", "block_in"):
        return 2.0  # a ReLU follows
    if role.kind == "block_out":
        if scheme == "hanin":
            return (HANIN_DECAY ** role.block) ** 2
        return 1.0 / role.stage_blocks  # spec §3.4: gamma = 1/B_k, per stage
    return 1.0  # shortcut, WN head: no ReLU follows


def _layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d))]


def initialize_layer_(layer: nn.Module, scheme: str = "proposed", *, gamma: float = 2.0,
                      direction: str = "orthogonal", generator: torch.Generator | None = None) -> float | None:
    """Initialize one Linear/Conv layer, weight-normalized or not; returns the (mean) gain ``g``.

    On a plain layer the effective weight ``g*v/||v||`` is written to ``weight``, so wrapping it with
    weight norm afterwards gives exactly the layer initialized after wrapping.
    ``datadep`` needs the model's data and is only available through :func:`initialize`.
    """
    _check_scheme(scheme)
    if scheme == "datadep":
        raise ValueError("scheme 'datadep' needs a batch of data: call wninit.initialize(model, 'datadep', batch=x)")
    return _init_layer(layer, scheme, gamma, direction, generator)[0]


def _direction_kind(scheme: str, direction: str) -> str:
    """The direction a scheme draws: ``"xavier"``, or ``"orthogonal"``/``"gaussian"`` (plain schemes by name)."""
    if scheme == "xavier":
        return "xavier"
    return {"he": "gaussian", "orthogonal": "orthogonal"}.get(scheme, check_direction(direction))


def _direction_tensor(layer: nn.Module) -> torch.Tensor:
    """Where the layer's direction is drawn: a WN layer's ``v`` itself, else a temporary (plain layers)."""
    api = wn_api(layer)
    return torch.empty_like(layer.weight) if api is None else wn_parameters(layer, api)[2]


def _init_layer(layer: nn.Module, scheme: str, gamma: float, direction: str,
                generator: torch.Generator | None, drawn: torch.Tensor | None = None) -> tuple[float | None, int, int]:
    """:func:`initialize_layer_` without the argument checks: ``(g, fan_in, fan_out)``.

    ``drawn``: the layer's direction already drawn (:func:`_direction_tensor`, filled by ``initialize``).

    A WN layer's parameters are looked up once and written in place: the direction drawn straight into
    ``v`` (the same draws as into a temporary), ``g`` filled, all under one ``no_grad``: on 10,000-layer
    nets the per-layer bookkeeping counts (issue 7, benchmarks/bench_init.py).
    """
    api = wn_api(layer)
    if api is None:
        v = torch.empty_like(layer.weight) if drawn is None else drawn
    else:
        _, g_param, v = wn_parameters(layer, api)
    if drawn is None:
        kind = _direction_kind(scheme, direction)
        if kind == "xavier":
            torch.nn.init.xavier_normal_(v, generator=generator)
        else:
            # The reference draws the proposed schemes' Gaussian v from N(0, 1/fan_in), the baselines' He-normal.
            direction_(v, kind, generator, 1.0 if scheme in ("proposed", "proposed-backward", "hanin") else None)
    fan_in, fan_out = fan_in_and_fan_out(v)
    if scheme in ("proposed", "hanin"):
        g = proposed_gain(fan_in, fan_out, gamma)
    elif scheme == "proposed-backward":
        g = math.sqrt(gamma)  # spec §3.2 (the code's dead "version 13"): no fan correction
    else:  # pytorch-default, he, orthogonal, xavier: w = v, i.e. g = ||v|| per unit
        g = None
    with torch.no_grad():
        if layer.bias is not None:
            layer.bias.zero_()
        if api is None:
            w = v if g is None else v * (g / v.flatten(1).norm(dim=1)).view((-1,) + (1,) * (v.dim() - 1))
            layer.weight.copy_(w)
            return g, fan_in, fan_out
        if g is None:
            g_param.copy_(v.flatten(1).norm(dim=1).view_as(g_param))
        else:
            g_param.fill_(g)
    if api == "legacy":
        set_direction_(layer, v)  # v is already in place; this refreshes the legacy API's cached weight
    if g is not None and g_param.dtype in _NUMPY_FLOAT:  # the stored value, without reading the tensor back
        return float(_NUMPY_FLOAT[g_param.dtype](g)), fan_in, fan_out
    return float(g_param.detach().mean()), fan_in, fan_out


def _datadep_(model: nn.Module, layers: list[tuple[str, nn.Module]], batch: torch.Tensor) -> None:
    """Salimans & Kingma's data-dependent init in one forward pass (spec §4).

    With g = 1 and b = 0, each WN layer's output on ``batch`` gives per-unit mean mu and population std
    sigma (over batch and spatial dims, no epsilon, as the reference); then g = 1/sigma, b = -mu/sigma, and
    the normalized output is what flows on, so every later layer sees the already-initialized network,
    in forward order. Residual branches and shortcuts are normalized separately and their sum is not
    re-normalized, exactly as the reference.
    """
    done: set[int] = set()

    def normalize(layer, _inputs, out):
        if id(layer) in done:  # a layer called twice keeps its first init
            return out
        done.add(id(layer))
        dims = [0] + list(range(2, out.dim()))
        mu, sigma = out.mean(dims), out.std(dims, unbiased=False)
        set_gain_(layer, 1.0 / sigma)
        shape = (1, -1) + (1,) * (out.dim() - 2)
        if layer.bias is None:  # no shift to absorb the mean: scale only
            return out / sigma.view(shape)
        layer.bias.copy_(-mu / sigma)
        return (out - mu.view(shape)) / sigma.view(shape)

    handles = [m.register_forward_hook(normalize) for _, m in layers]
    try:
        with torch.no_grad():
            model(batch)
    finally:
        for h in handles:
            h.remove()


def initialize(model: nn.Module, scheme: str = "proposed", *, direction: str = "orthogonal",
               batch: torch.Tensor | None = None, generator: torch.Generator | None = None,
               stem_gamma: float | None = None) -> list[LayerInit]:
    """Initialize every layer of ``model`` by ``scheme``; returns one :class:`LayerInit` per layer touched.

    Schemes for weight-normalized networks (spec §3.5, §4): ``proposed`` (``g = sqrt(gamma*fan_in/fan_out)``
    by role), ``proposed-backward`` (``g = sqrt(gamma)``, spec §3.2), ``pytorch-default`` (``g = ||v||``),
    ``datadep`` (Salimans & Kingma, needs ``batch``), ``hanin`` (proposed with the residual branch scaled
    by 0.9^b per stage). Schemes for networks without weight norm, plain or BatchNorm: ``he``,
    ``orthogonal``, ``xavier`` (BN weight 1, bias 0). Biases are 0; the plain classifier head keeps
    PyTorch's default init (spec §3.5a).

    Examples:
        >>> model = wninit.models.MLP(784, 128, depth=20, num_classes=10)
        >>> records = wninit.initialize(model, "proposed")
    """
    _check_scheme(scheme)
    check_direction(direction)
    layers = [(n, m) for n, m in _layers(model) if get_role(m).kind != "head" or is_weight_normed(m)]
    wn = [(n, m) for n, m in layers if is_weight_normed(m)]
    if scheme in WN_SCHEMES:
        if not wn:
            raise ValueError(f"scheme {scheme!r} is for weight-normalized networks and this model has no WN layer: "
                             "build it with norm='wn' or wrap its layers with wninit.weight_norm, or use 'he', 'orthogonal' or 'xavier'")
        if scheme == "datadep" and batch is None:
            raise ValueError("scheme 'datadep' needs a batch of inputs: pass batch=x (the reference uses one training batch)")
        layers = wn
    elif wn:
        raise ValueError(f"scheme {scheme!r} is for networks without weight norm; for this WN network use "
                         f"'pytorch-default' with direction='{'orthogonal' if scheme == 'orthogonal' else 'gaussian'}'")
    records = []
    drawn = [None] * len(layers)
    if _direction_kind(scheme, direction) == "orthogonal":
        # All directions first, in layer order from the one generator (the same draws as layer by layer),
        # their QRs spread over torch's threads: init.orthogonal_directions_ (issue 7).
        drawn = orthogonal_directions_([_direction_tensor(m) for _, m in layers], generator)
    for (name, layer), v in zip(layers, drawn):
        role = get_role(layer)
        gamma = role_gamma(role, scheme, stem_gamma) if scheme in ("proposed", "hanin", "proposed-backward") else None
        step_scheme = "pytorch-default" if scheme == "datadep" else scheme
        g, fan_in, fan_out = _init_layer(layer, step_scheme, gamma or 1.0, direction, generator, v)
        records.append(LayerInit(name, role.kind, fan_in, fan_out, gamma, g))
    if scheme == "datadep":
        for _, layer in layers:
            set_gain_(layer, 1.0)
        _datadep_(model, layers, batch)
        records = [LayerInit(r.name, r.role, r.fan_in, r.fan_out, None, float(gain(m).detach().mean()))
                   for r, (_, m) in zip(records, layers)]
    if scheme in PLAIN_SCHEMES:
        for m in model.modules():
            # A BN that keeps its own init: the models' reference mode (weight U(0, 1), as torch 1.1 drew it).
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine and not getattr(m, "keeps_init", False):
                nn.init.ones_(m.weight), nn.init.zeros_(m.bias)
    return records
