"""Model-level initialization schemes: the proposed one (docs/method.md §3.5) and every baseline of the paper (docs/method.md §4).

`initialize(model, scheme)` walks the model's Linear/Conv layers in registration order, draws each
direction `v` from one generator (so a seed gives the same weights whichever weight-norm API holds
the layer), and sets `g` and `b` by the layer's declared role (`wninit.structure.roles`). Orthogonal
directions are drawn for all layers first and their QRs run side by side on torch's threads
([`wninit.init.gains.orthogonal_directions_`][]): the same weights at any thread count (large square layers
aside), in less time than `torch.nn.init.orthogonal_` layer by layer when there are two threads or more.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn

from wninit.errors import UserError, check_model
from wninit.structure.hooks import forward_with_hooks
from wninit.init.gains import (check_direction, copy_direction_, direction_, direction_target, layer_fans, layer_gain,
                   orthogonal_directions_)
from wninit.structure.roles import Role, get_role
from wninit.weightnorm.access import (effective_weight, is_weight_normed, layer_kind, set_g_, set_v_, wn_api, wn_dim, wn_g,
                         wn_parameters)
from wninit.weightnorm.formula import unit_norms, wn_weight

__all__ = ["Scheme", "REGISTRY", "SCHEMES", "WN_SCHEMES", "PLAIN_SCHEMES", "LayerInit", "role_gamma", "initialize", "initialize_layer_"]



@dataclass(frozen=True)
class Scheme:
    """One initialization scheme (docs/method.md, sections as cited): what it is, and how figures draw it.

    `norm` is the networks it initializes ("wn": weight-normalized; "plain": plain or BN); `gain` says
    how it sets g (or the weight's scale); `roles`: its gamma depends on the layer's role; `data`: it
    needs a batch; `label` is the paper's legend name and `colours` (dark, light) its colours for
    orthogonal and Gaussian (He) directions in every figure the package draws.
    """
    name: str
    norm: str
    gain: str
    roles: bool
    data: bool
    label: str
    colours: tuple[str, str]


REGISTRY = {s.name: s for s in (
    Scheme("proposed", "wn", "g = sqrt(gamma fan_in / fan_out), gamma by the layer's role (§3.5)", True, False,
           "Proposed", ("#1f4e9c", "#5aa9e6")),
    Scheme("proposed-backward", "wn", "g = sqrt(gamma), the backward pass's condition (§3.2)", True, False,
           "Proposed backward", ("#6c3483", "#bb8fce")),
    Scheme("pytorch-default", "wn", "w = v: g = ||v|| per unit (§4)", False, False,
           "PyTorch default", ("#444444", "#a0a0a0")),
    Scheme("datadep", "wn", "g and b from each unit's pre-activation statistics on a batch (Salimans & Kingma, §4)", False, True,
           "Data-dependent", ("#c0392b", "#f39c12")),
    Scheme("hanin", "wn", "the proposed gain, the residual branch scaled by 0.9^b within each stage (§3.6)", True, False,
           "Stage-wise Hanin", ("#1e7b4a", "#72c98f")),
    Scheme("he", "plain", "w = v, a Gaussian (He) draw (§4)", False, False, "He", ("#8d5524", "#8d5524")),
    Scheme("orthogonal", "plain", "w = v, an orthogonal draw (§4)", False, False, "Orthogonal",
           ("#8d5524", "#8d5524")),
    Scheme("xavier", "plain", "w = v, a Xavier normal draw (§4)", False, False, "Xavier",
           ("#b7950b", "#b7950b")),
)}
SCHEMES = tuple(REGISTRY)
WN_SCHEMES = tuple(n for n, s in REGISTRY.items() if s.norm == "wn")
PLAIN_SCHEMES = tuple(n for n, s in REGISTRY.items() if s.norm == "plain")
ROLE_SCHEMES = tuple(n for n, s in REGISTRY.items() if s.roles)
DATA_FREE_SCHEMES = tuple(n for n, s in REGISTRY.items() if not s.data)  # those that run without a batch
# Peers that only initialize (docs/peers.md): initialize runs them through wninit.peers on plain networks; the
# peers that change the architecture are wninit.peers.apply's alone.
PEER_INITS = ("lsuv", "delta-orthogonal")  # the schemes whose gamma depends on the layer's role

# docs/method.md §3.6 item 6: Hanin & Rolnick's residual scale eta_b = 0.9^b, b = 1..B_k within each stage; on g
# it is the gamma 0.81^b of the block's last conv.
HANIN_DECAY = 0.9
_NUMPY_FLOAT = {torch.float32: np.float32, torch.float64: np.float64, torch.float16: np.float16}


@dataclass(frozen=True)
class LayerInit:
    """What `initialize` did to one layer. `g` is the mean gain (per-unit gains differ under datadep).

    `fan_in`/`fan_out` are one group's, from the module ([`wninit.init.gains.layer_fans`][]); `kind` the torch
    layer kind (`"Linear"`, `"ConvTranspose1d"`, ...); `source` where the role came from (`declared`,
    `discovered` or `default`); `rule` which rule set gamma (e.g. `relu follows: 1/E[phi(z)^2]`).
    """
    name: str
    role: str
    fan_in: int
    fan_out: int
    gamma: float | None
    g: float | None
    kind: str = ""
    source: str = "declared"
    rule: str = ""
    stage: int | None = None
    block: int | None = None
    stage_blocks: int | None = None
    gain_from: str = "predicted"  # "measured": g set from one forward pass on the example input (method.md §3.10)


def _check_scheme(scheme: str) -> str:
    if scheme not in SCHEMES:
        raise UserError(f"unknown scheme {scheme!r}: choose one of {', '.join(SCHEMES + PEER_INITS)} "
                         "(or wninit.peers.apply for the peers that change the architecture)")
    return scheme


def _peer_init(model: nn.Module, scheme: str, batch, generator) -> list[LayerInit]:
    """`initialize(model, "lsuv" | "delta-orthogonal")`: the peer, then one record per plain layer it set."""
    from wninit.peers import apply

    apply(model, scheme, **({"batch": batch} if batch is not None else {}), generator=generator)
    return [LayerInit(n, "hidden", *layer_fans(m), None, None, layer_kind(m), "peer", scheme)
            for n, m in _layers(model) if not is_weight_normed(m)]


def role_gamma(role: Role, scheme: str = "proposed", stem_gamma: float | None = None) -> float:
    """gamma of `g = sqrt(gamma*fan_in/fan_out)` for a layer of this role (docs/method.md §3.5 table, §3.7).

    A declared `role.gamma` wins (`wninit.models.ResNet` declares 2 for its stem, as the reference `ResNet`
    class, docs/method.md §3.6 item 8); `stem_gamma`, when given, overrides a stem's. Otherwise a layer keeps the norm of
    what it passes on, `gamma = 1/f` with `f` the energy factor of what follows it (`role.follow`; 1/2 for
    the paper's ReLU, so gamma 2), and a residual branch's last layer adds `1/B_k` of its stream's energy,
    `gamma = 1/(B_k * r)` with `r` the energy it receives over the stream's (`role.branch_ratio`; 1 in the
    paper's block, so gamma `1/B_k`). A stem nothing is known to follow gets 1 (the reference `WideResNet`).
    """
    if role.kind == "stem" and stem_gamma is not None:
        return stem_gamma
    if role.gamma is not None:
        return float(role.gamma)
    if role.kind == "block_out":
        scale = (HANIN_DECAY ** role.block) ** 2 if scheme == "hanin" else 1.0 / role.stage_blocks  # docs/method.md §3.4, per stage
        return scale if role.branch_ratio is None else scale / role.branch_ratio
    if role.follow is not None:
        return 1.0 / role.follow
    if role.kind == "stem":
        return 1.0
    if role.kind in ("hidden", "block_in"):
        return 2.0  # a ReLU follows
    return 1.0  # shortcut, head, linear: nothing follows


def _layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(n, m) for n, m in model.named_modules() if layer_kind(m) is not None]


def initialize_layer_(layer: nn.Module, scheme: str = "proposed", *, gamma: float = 2.0,
                      direction: str = "orthogonal", generator: torch.Generator | None = None) -> torch.Tensor:
    r"""Initialize one Linear/Conv/ConvTranspose layer by `scheme`, in place; returns its effective weight.

    From "How to Initialize your Network? Robust Initialization for WeightNorm & ResNets" - Arpit,
    Campos & Bengio (2019): the direction `v` is drawn (orthogonal or Gaussian), the bias zeroed, and
    under `proposed` every normalized unit gets the gain

    $$
    g = \sqrt{\gamma \cdot \text{fan\_in} / \text{fan\_out}}
    $$

    for the layer's kind, groups, stride and WN `dim` ([`wninit.init.gains.layer_gain`][], docs/method.md §3.1,
    §3.8): with `gamma=1` the layer keeps the norm of its input at each position (`gamma=2`: before a ReLU).
    On a plain layer `g v/||v||` (`dim=0`) is written to `weight`, so wrapping it with weight norm
    afterwards gives exactly the layer initialized after wrapping. `datadep` needs the model's data and
    is only available through [`initialize`][wninit.init.schemes.initialize].

    The returned tensor is `w = g v/||v||`, the one tensor every layer has: a plain layer's `weight`
    itself, a WN layer's weight computed from the `g` and `v` written (without autograd history).
    The gains it holds: [`wninit.weightnorm.access.wn_g`][] (WN) or `w`'s unit norms; the formula's value:
    [`wninit.init.gains.layer_gain`][].

    Args:
        layer: an `nn.Linear`, `nn.Conv{1,2,3}d` or `nn.ConvTranspose{1,2,3}d`, WN (any API) or not.
        scheme: one of `SCHEMES` but `datadep`.
        gamma: the role's factor of the proposed schemes (2 before a ReLU, 1 before nothing).
        direction: `"orthogonal"` or `"gaussian"` (alias `"he"`) for the WN schemes.
        generator: the random stream of the direction.

    Examples:
        >>> w = initialize_layer_(wninit.weight_norm(nn.Linear(20, 60)), gamma=2.0)
        >>> w.norm(dim=1)[:2]  # sqrt(2 * 20/60)
        tensor([0.8165, 0.8165])
    """
    _check_scheme(scheme)
    if scheme == "datadep":
        raise UserError("scheme 'datadep' needs a batch of data: call wninit.initialize(model, 'datadep', batch=x)")
    _init_layer(layer, scheme, gamma, direction, generator)
    if not is_weight_normed(layer):
        return layer.weight
    with torch.no_grad():
        return effective_weight(layer)


def _direction_kind(scheme: str, direction: str) -> str:
    """The direction a scheme draws: `"xavier"`, or `"orthogonal"`/`"gaussian"` (plain schemes by name)."""
    if scheme == "xavier":
        return "xavier"
    return {"he": "gaussian", "orthogonal": "orthogonal"}.get(scheme, check_direction(direction))


def _direction_tensor(layer: nn.Module) -> torch.Tensor:
    """Where the layer's direction is drawn: a WN layer's `v` itself when it is a contiguous float32/64
    tensor normalized along dim 0 (the fast path), else a float32 temporary over its normalized units
    (`wninit.init.gains.direction_target`), written back by `_init_layer`; plain layers: a temporary."""
    api = wn_api(layer)
    if api is None:
        w = layer.weight
        return torch.empty(w.shape, dtype=w.dtype if w.dtype in (torch.float32, torch.float64) else torch.float32,
                           device=w.device)
    return direction_target(wn_parameters(layer, api)[2], wn_dim(layer, api))


def _init_layer(layer: nn.Module, scheme: str, gamma: float, direction: str,
                generator: torch.Generator | None, drawn: torch.Tensor | None = None) -> tuple[float | None, int, int]:
    """[`initialize_layer_`][wninit.init.schemes.initialize_layer_] without the argument checks: `(g, fan_in, fan_out)`, `g` the (mean) gain.

    `drawn`: the layer's direction already drawn (`_direction_tensor`, filled by `initialize`).

    A WN layer's parameters are looked up once and written in place: the direction drawn straight into
    `v` (the same draws as into a temporary), `g` filled, all under one `no_grad`: on very deep nets
    the per-layer bookkeeping counts (docs/performance.md).
    """
    api = wn_api(layer)
    dim = 0 if api is None else wn_dim(layer, api)
    if drawn is None:
        drawn = _direction_tensor(layer)
        kind = _direction_kind(scheme, direction)
        if kind == "xavier":
            torch.nn.init.xavier_normal_(drawn, generator=generator)
        else:
            # The reference draws the proposed schemes' Gaussian v from N(0, 1/fan_in), the baselines' He-normal.
            direction_(drawn, kind, generator, 1.0 if scheme in ROLE_SCHEMES else None)
    fan_in, fan_out = layer_fans(layer)
    g = scheme_gain(layer, scheme, gamma, dim)
    with torch.no_grad():
        if layer.bias is not None:
            layer.bias.zero_()
        if api is None:
            v = drawn
            w = v if g is None else wn_weight(v, g, fused=False)
            layer.weight.copy_(w)
            return g, fan_in, fan_out
        _, g_param, v = wn_parameters(layer, api)
        copy_direction_(v, drawn, dim)
        if g is None:
            g_param.copy_(unit_norms(v, dim).view_as(g_param))
        else:
            g_param.fill_(g)
    if api == "legacy":
        set_v_(layer, v)  # v is already in place; this refreshes the legacy API's cached weight
    if g is not None and g_param.dtype in _NUMPY_FLOAT:  # the stored value, without reading the tensor back
        return float(_NUMPY_FLOAT[g_param.dtype](g)), fan_in, fan_out
    return float(g_param.detach().mean()), fan_in, fan_out


def scheme_gain(layer: nn.Module, scheme: str, gamma: float, dim: int | None) -> float | None:
    """The gain `scheme` sets on every unit of `layer` (its weight-norm `dim`), or None where `g = ||v||`
    (pytorch-default and the plain schemes: `w = v`): a number that needs no direction drawn."""
    if scheme in ("proposed", "hanin"):
        return layer_gain(layer, gamma, dim)
    if scheme == "proposed-backward":
        return math.sqrt(gamma)  # docs/method.md §3.2 (the code's dead "version 13"): no fan correction
    return None


def _warn_unknown_kinds(model: nn.Module) -> None:
    """Nothing silent: a weight-normed module of a kind wninit has no gain for is named, not skipped quietly."""
    unknown = [f"{n or '(the model)'} ({type(m).__name__})" for n, m in model.named_modules()
               if layer_kind(m) is None and wn_api(m) is not None]
    if unknown:
        warnings.warn(f"wninit leaves {len(unknown)} weight-normed module(s) of a kind it has no gain for as they are: "
                      f"{', '.join(unknown[:8])}; it initializes Linear, Conv and ConvTranspose layers", stacklevel=3)


def _placements(model: nn.Module, layers, scheme: str, discover: bool | None, example_inputs) -> tuple[dict, object]:
    """Roles of the WN layers and the discovered structure, for the schemes whose gains depend on them (the
    others need no structure)."""
    if scheme not in ROLE_SCHEMES:
        return {}, None
    from wninit.structure.plan import plan

    return plan(model, layers, discover=discover, example_inputs=example_inputs)


def _measured(model: nn.Module, structure, example_inputs, records: list[LayerInit]) -> list[LayerInit]:
    """The proposed scheme with an example input: the branch ends outside the theory get g measured (§3.10)."""
    from wninit.structure.measure import measure_branch_ends

    ends = [r.name for r in records if r.source == "discovered" and r.role == "block_out"]
    factors = measure_branch_ends(model, structure, example_inputs, ends) if ends else {}
    return [replace(r, g=r.g * factors[r.name], gain_from="measured") if r.name in factors else r for r in records]


def _datadep_(model: nn.Module, layers: list[tuple[str, nn.Module]], batch: torch.Tensor) -> None:
    """Salimans & Kingma's data-dependent init in one forward pass (docs/method.md §4).

    With g = 1 and b = 0, each WN layer's output on `batch` gives per-unit mean mu and population std
    sigma (over batch and spatial dims, no epsilon, as the reference); then g = 1/sigma, b = -mu/sigma, and
    the normalized output is what flows on, so every later layer sees the already-initialized network,
    in forward order. Residual branches and shortcuts are normalized separately and their sum is not
    re-normalized, exactly as the reference.
    """
    for name, layer in layers:  # g per output channel: only where the normalized units are the output channels
        kind, dim = layer_kind(layer), wn_dim(layer)
        per_output_channel = dim == 1 and layer.groups == 1 if kind.startswith("ConvTranspose") else dim == 0
        if not per_output_channel:
            raise UserError(f"scheme 'datadep' sets one g per output channel, and layer {name!r} ({kind}) is weight-normalized "
                             f"over dim={dim}, not its output channels: use scheme 'proposed', or wrap it with dim=1 (ConvTranspose) or 0")
    done: set[int] = set()

    def normalize(layer, _inputs, out):
        if id(layer) in done:  # a layer called twice keeps its first init
            return out
        done.add(id(layer))
        dims = [0] + list(range(2, out.dim()))
        mu, sigma = out.mean(dims), out.std(dims, unbiased=False)
        set_g_(layer, 1.0 / sigma)
        shape = (1, -1) + (1,) * (out.dim() - 2)
        if layer.bias is None:  # no shift to absorb the mean: scale only
            return out / sigma.view(shape)
        layer.bias.copy_(-mu / sigma)
        return (out - mu.view(shape)) / sigma.view(shape)

    forward_with_hooks(model, batch, [(m, normalize) for _, m in layers])


def _targets(model: nn.Module, scheme: str, batch: torch.Tensor | None) -> list[tuple[str, nn.Module]]:
    """The layers `scheme` initializes, in registration order, or one sentence on why it does not fit `model`."""
    _warn_unknown_kinds(model)
    layers = [(n, m) for n, m in _layers(model) if get_role(m).kind != "head" or is_weight_normed(m)]
    wn = [(n, m) for n, m in layers if is_weight_normed(m)]
    if scheme in WN_SCHEMES:
        if not wn:
            raise UserError(f"scheme {scheme!r} is for weight-normalized networks and this model has no WN layer: "
                             "wrap it with wninit.weight_norm(model) (wninit.models' own networks: norm='wn'), or use 'he', 'orthogonal' or 'xavier'")
        if scheme == "datadep" and batch is None:
            raise UserError("scheme 'datadep' needs a batch of inputs: pass batch=x (the reference uses one training batch)")
        return wn
    if wn:
        raise UserError(f"scheme {scheme!r} is for networks without weight norm; for this WN network use "
                         f"'pytorch-default' with direction='{'orthogonal' if scheme == 'orthogonal' else 'gaussian'}'")
    return layers


def _init_layers(model: nn.Module, layers: list[tuple[str, nn.Module]], scheme: str, direction: str,
                 generator: torch.Generator | None, stem_gamma: float | None, discover: bool | None,
                 example_inputs=None) -> tuple[list[LayerInit], object]:
    """Draw every layer's direction and set its `g` and `b` by its role; one [`LayerInit`][wninit.init.schemes.LayerInit] per layer,
    and the discovered structure (None when not traced)."""
    plans, structure = planned_roles(model, layers, scheme, stem_gamma, discover, example_inputs)
    drawn = [None] * len(layers)
    if _direction_kind(scheme, direction) == "orthogonal":
        # All directions first, in layer order from the one generator (the same draws as layer by layer),
        # their QRs spread over torch's threads: init.orthogonal_directions_.
        drawn = orthogonal_directions_([_direction_tensor(m) for _, m in layers], generator)
    records = []
    for (name, layer), v, (role, gamma, p) in zip(layers, drawn, plans):
        step_scheme = "pytorch-default" if scheme == "datadep" else scheme
        g, fan_in, fan_out = _init_layer(layer, step_scheme, gamma or 1.0, direction, generator, v)
        records.append(layer_record(name, layer, role, gamma, p, g, (fan_in, fan_out)))
    return records, structure


def planned_roles(model: nn.Module, layers: list[tuple[str, nn.Module]], scheme: str, stem_gamma: float | None,
                  discover: bool | None, example_inputs=None) -> tuple[list[tuple[Role, float | None, object]], object]:
    """`(role, gamma, placement)` of every layer: declared, discovered or the default (`placement` None
    where the scheme needs no structure); what `initialize` and `explain` both record. Second, the
    discovered structure (None when not traced)."""
    placed, structure = _placements(model, layers, scheme, discover, example_inputs)
    plans = []
    for name, layer in layers:
        p = placed.get(name)
        role = p.role if p is not None else get_role(layer)
        plans.append((role, role_gamma(role, scheme, stem_gamma) if scheme in ROLE_SCHEMES else None, p))
    return plans, structure


def layer_record(name: str, layer: nn.Module, role: Role, gamma: float | None, p, g: float | None,
                 fans: tuple[int, int] | None = None) -> LayerInit:
    """The [`LayerInit`][wninit.init.schemes.LayerInit] of one layer from its plan (`planned_roles`) and gain; a gain set by a
    role's gamma is "predicted" until measured (docs/method.md §3.10)."""
    return LayerInit(name, role.kind, *(fans or layer_fans(layer)), gamma, g, layer_kind(layer),
                     p.source if p else "declared", p.rule if p else "", role.stage, role.block, role.stage_blocks,
                     "predicted" if gamma is not None else "")


def _reset_batchnorm(model: nn.Module) -> None:
    """BN weight 1, bias 0 for the plain schemes, but where a BN keeps its own init."""
    for m in model.modules():
        # A BN that keeps its own init: the models' reference mode (weight U(0, 1), as torch 1.1 drew it).
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine and not getattr(m, "keeps_init", False):
            nn.init.ones_(m.weight), nn.init.zeros_(m.bias)


def initialize(model: nn.Module, scheme: str = "proposed", *, direction: str = "orthogonal",
               batch: torch.Tensor | None = None, generator: torch.Generator | None = None,
               stem_gamma: float | None = None, discover: bool | None = None,
               example_inputs=None) -> list[LayerInit]:
    r"""Initialize every Linear/Conv/ConvTranspose layer of `model` by `scheme`, in place; one record per layer.

    From "How to Initialize your Network? Robust Initialization for WeightNorm & ResNets" - Arpit,
    Campos & Bengio (2019). The proposed scheme draws each weight-normalized layer's direction `v` and
    sets its gain so that the layer keeps the norm of what it passes on (docs/method.md §3.1, §3.4, §3.5):

    $$
    g = \sqrt{\gamma \cdot \text{fan\_in} / \text{fan\_out}}
    $$

    ([`wninit.init.gains.proposed_gain`][]; [`wninit.init.gains.layer_gain`][] for groups, strides and transposed
    layers, §3.8), with `gamma` by the layer's role ([`role_gamma`][wninit.init.schemes.role_gamma]): 2 when a ReLU follows, 1 when
    nothing does, `1/B_k` for the last layer of a residual block in a stage of `B_k` blocks. Biases are
    0; the plain classifier head keeps PyTorch's default init (docs/method.md §3.5a). Each layer's role is
    the one declared with [`wninit.set_role`][wninit.structure.roles.set_role], else the one [`wninit.structure.trace.discover`][] finds by
    tracing the model (§3.7), else `hidden` with one warning naming the layer. [`wninit.explain`][wninit.init.explain.explain]
    prints the records without changing the model.

    Args:
        model: the network, weight-normalized (any API) for the WN schemes, plain or BatchNorm for the others.
        scheme: for WN networks (docs/method.md §3.5, §4) `"proposed"`, `"proposed-backward"`
            (`g = sqrt(gamma)`, §3.2), `"pytorch-default"` (`g = ||v||`), `"datadep"` (Salimans &
            Kingma, needs `batch`), `"hanin"` (the residual branch scaled by `0.9^b` per stage); for
            networks without WN `"he"`, `"orthogonal"`, `"xavier"` (BN weight 1, bias 0); the peers
            `"lsuv"`, `"delta-orthogonal"` (docs/peers.md).
        direction: the distribution of `v`: `"orthogonal"` or `"gaussian"` (alias `"he"`).
        batch: a batch of inputs, for `datadep` (and the peers that read data).
        generator: the one random stream every direction is drawn from, in layer order.
        stem_gamma: overrides the stem's gamma (the models declare theirs).
        discover: None traces the model only when a WN layer has no declared role; True always; False never.
        example_inputs: a tensor, a tuple of positional arguments or a dict of keyword arguments the model
            accepts: the model is traced by running it once (docs/method.md §3.9), and under `proposed` the
            branch ends outside the theory get g measured on it (§3.10). Without it, torch.fx traces.

    Returns:
        one [`LayerInit`][wninit.init.schemes.LayerInit] per layer initialized, in registration order.

    Examples:
        >>> model = wninit.models.MLP(784, 128, depth=20, num_classes=10)
        >>> records = wninit.initialize(model, "proposed")
    """
    check_model(model, "wninit.initialize")
    if scheme in PEER_INITS:
        return _peer_init(model, scheme, batch, generator)
    _check_scheme(scheme)
    check_direction(direction)
    layers = _targets(model, scheme, batch)
    records, structure = _init_layers(model, layers, scheme, direction, generator, stem_gamma, discover, example_inputs)
    if scheme == "proposed" and example_inputs is not None and structure is not None:
        records = _measured(model, structure, example_inputs, records)
    if scheme == "datadep":
        for _, layer in layers:
            set_g_(layer, 1.0)
        _datadep_(model, layers, batch)
        records = [replace(r, g=float(wn_g(m).detach().mean())) for r, (_, m) in zip(records, layers)]
    if scheme in PLAIN_SCHEMES:
        _reset_batchnorm(model)
    return records
