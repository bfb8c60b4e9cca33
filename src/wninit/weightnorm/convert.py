"""Turn a model into a weight-normalized one: every Linear/Conv/ConvTranspose wrapped, BatchNorm out.

The paper's setting (docs/method.md §2.1) is a network with weight norm in place of BatchNorm. A user's
model, a torchvision-layout BN ResNet say, becomes one in one call::

    wninit.weight_norm(model, remove_batchnorm=True)
    wninit.initialize(model, "proposed")
"""
from __future__ import annotations

import copy
from collections.abc import Iterable

import torch
from torch import nn

from wninit.errors import UserError, check_model
from wninit.weightnorm.access import _SUPPORTED, APIS, _check_dim, is_weight_normed, layer_kind
from wninit.weightnorm.access import weight_norm as _wrap_layer
from wninit.weightnorm.layers import _WN_CLASS

__all__ = ["weight_norm"]


def _excluded(names: set[str], exclude: Iterable[str | nn.Module], model: nn.Module) -> set[str]:
    """Every module name under `exclude` (names or modules of `model`); one sentence for one not in it."""
    roots = set()
    by_id = {id(m): n for n, m in model.named_modules()}
    for item in exclude:
        name = by_id.get(id(item)) if isinstance(item, nn.Module) else item
        if name not in names:
            raise UserError(f"exclude names {item if isinstance(item, str) else type(item).__name__!r}, which is not "
                            "a submodule of this model: give names as model.named_modules() spells them, or the modules")
        roots.add(name)
    return {n for n in names if any(n == r or n.startswith(r + ".") or r == "" for r in roots)}


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent), child, new)


_BN_FORWARDS = (nn.modules.batchnorm._BatchNorm.forward, nn.SyncBatchNorm.forward)
_PROBE_SHAPE = {nn.BatchNorm1d: (3, 4), nn.BatchNorm3d: (2, 2, 2, 2)}  # the rest: (N, H, W) around C, as 2d


def _kept_part(name: str, norm: nn.modules.batchnorm._BatchNorm) -> nn.Module:
    """What takes a BatchNorm's place: `nn.Identity`, or the activation a fused BatchNorm applies after
    normalizing (timm's `BatchNormAct2d` and the like), or one sentence naming the layer.

    A subclass that overrides `forward` may apply more than the normalization. Its part is identified
    when at most one child is not an `nn.Identity`, and checked: on a seeded probe input, in eval mode, on
    a copy, its forward must equal that child applied to torch's own BatchNorm forward.
    """
    if type(norm).forward in _BN_FORWARDS:
        return nn.Identity()
    kids = [m for m in norm.children() if type(m) is not nn.Identity]
    kept = kids[0] if len(kids) == 1 else nn.Identity()
    if len(kids) < 2 and not nn.parameter.is_lazy(norm.weight if norm.affine else norm.running_mean):
        probe = copy.deepcopy(norm).eval()
        part = next((m for m in probe.children() if type(m) is not nn.Identity), nn.Identity())
        shape = _PROBE_SHAPE.get(next((c for c in _PROBE_SHAPE if isinstance(norm, c)), None), (2, 3, 3))
        x = torch.randn(shape[0], norm.num_features, *shape[1:], generator=torch.Generator().manual_seed(0)) * 2
        try:
            with torch.no_grad():
                expected, got = part(nn.modules.batchnorm._BatchNorm.forward(probe, x.clone())), probe(x.clone())
            if isinstance(got, torch.Tensor) and got.shape == expected.shape and torch.allclose(got, expected):
                return kept
        except (RuntimeError, ValueError, TypeError):
            pass  # a forward the probe cannot run is not identified: the sentence below
    raise UserError(f"remove_batchnorm cannot tell what to keep of {name!r} ({type(norm).__name__}), a BatchNorm "
                    "subclass whose forward does more than normalize (a fused activation?): replace it by what it "
                    "applies after normalizing, or exclude it")


def _to_wrap(model: nn.Module, api: str, dim: int | None, exclude: Iterable[str | nn.Module],
             remove_batchnorm: bool = False) -> tuple[list[nn.Module], dict[str, nn.Module]]:
    """The layers [`weight_norm`][wninit.weightnorm.convert.weight_norm] wraps and, with `remove_batchnorm`, each BatchNorm's name and what takes
    its place, after every check: bad input leaves the model as it was."""
    modules = dict(model.named_modules())
    skip = _excluded(set(modules), exclude, model)
    layers = [n for n, m in modules.items()
              if layer_kind(m) is not None and not is_weight_normed(m) and n not in skip]
    norms = [n for n, m in modules.items() if isinstance(m, nn.modules.batchnorm._BatchNorm) and n not in skip]
    if not layers:
        raise UserError(f"found no Linear, Conv or ConvTranspose layer to weight-normalize in this {type(model).__name__} "
                        "(all are weight-normalized already or excluded)")
    if api == "wninit":
        subclassed = [n for n in layers if type(modules[n]) not in _WN_CLASS]
        if subclassed:
            raise UserError(f"api 'wninit' wraps exact torch layers, and {', '.join(subclassed)} are subclasses: "
                            "use api='torch', or exclude them")
    for name in layers:
        try:
            _check_dim(dim, modules[name])
        except ValueError as err:
            raise UserError(f"layer {name!r}: {err}") from None
    return [modules[n] for n in layers], {n: _kept_part(n, modules[n]) for n in norms if remove_batchnorm}


def weight_norm(module: nn.Module, api: str = "wninit", dim: int | None = 0, *, remove_batchnorm: bool = False,
                exclude: Iterable[str | nn.Module] = ()) -> nn.Module:
    r"""Weight-normalize one layer, or every Linear/Conv/ConvTranspose layer of a model, in place.

    From "Weight Normalization: A Simple Reparameterization to Accelerate Training of Deep Neural
    Networks" - Salimans & Kingma (2016), in the setting of "How to Initialize your Network? Robust
    Initialization for WeightNorm & ResNets" - Arpit, Campos & Bengio (2019): each layer computes

    $$
    w_u = g_u \, v_u / \lVert v_u \rVert
    $$

    per normalized unit `u` (the weight's slices along `dim`), with `g = ||v||` at wrapping, so every
    wrapped layer computes what it did before. Layers already weight-normalized (any API) are left as
    they are. The classifier is wrapped too (the converter does not guess which layer it is): the
    paper's models keep it plain, which `exclude=["fc"]` (its name) reproduces.

    Args:
        module: one layer, or a model.
        api: `"wninit"` (this package's layers), `"torch"` (parametrizations) or `"legacy"`.
        dim: the weight dim of the normalized units, as in torch (0: output units of a Linear or Conv,
            input channels of a ConvTranspose); None normalizes each weight as one unit.
        remove_batchnorm: replace every BatchNorm (1d/2d/3d, SyncBatchNorm) by `nn.Identity`; a BatchNorm
            with a fused activation (timm's `BatchNormAct2d`: a subclass whose forward also applies its
            `act` child) by that activation, or one sentence naming it when what it applies cannot be
            identified. Layers keep
            their bias setting: a conv that fed a BatchNorm usually has none, which is what a zero bias
            (the proposed init's) computes at initialization.
        exclude: names (as `named_modules` spells them) or modules whose layers stay as they are.

    Returns:
        `module`, changed in place.

    Examples:
        >>> model = weight_norm(torchvision.models.resnet50(), remove_batchnorm=True, exclude=["fc"])
        >>> records = wninit.initialize(model, "proposed")
    """
    check_model(module, "wninit.weight_norm")
    if api not in APIS:
        raise UserError(f"unknown weight-norm api {api!r}: choose one of {', '.join(map(repr, APIS))}")
    if isinstance(module, _SUPPORTED) and not exclude:
        try:
            return _wrap_layer(module, api, dim)
        except ValueError as err:
            raise UserError(str(err)) from None
    layers, norms = _to_wrap(module, api, dim, exclude, remove_batchnorm)
    for layer in layers:
        _wrap_layer(layer, api, dim)
    for name, kept in norms.items():
        _replace(module, name, kept)
    return module
