"""Weight normalization for Linear and Conv layers, whichever API holds it.

``w_i = g_i * v_i / ||v_i||`` per output unit (Salimans & Kingma 2016; spec §2.1, ``dim=0``). Three
implementations are read and written through one API (:func:`gain`, :func:`direction`,
:func:`set_gain_`, :func:`set_direction_`):

- ``"wninit"``: this package's layers (:class:`WNLinear`, :class:`WNConv2d`, ...), parameters ``g`` of
  shape ``(C_out,)`` and ``v`` of the weight's shape; what the suite's models use;
- ``"torch"``: ``torch.nn.utils.parametrizations.weight_norm`` (the current PyTorch API);
- ``"legacy"``: the deprecated ``torch.nn.utils.weight_norm`` (``weight_g``/``weight_v``), kept for
  users' existing models.
"""
from __future__ import annotations

import warnings
from contextlib import contextmanager
from contextvars import ContextVar

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.weight_norm import WeightNorm as _LegacyWeightNorm  # the legacy API's hook class

__all__ = [
    "APIS",
    "WNLinear",
    "WNConv1d",
    "WNConv2d",
    "WNConv3d",
    "weight_norm",
    "wn_api",
    "is_weight_normed",
    "gain",
    "direction",
    "wn_parameters",
    "set_gain_",
    "set_direction_",
    "effective_weight",
    "weight_normed_layers",
    "gain_parameters",
    "twice_differentiable",
]

APIS = ("wninit", "torch", "legacy")
_SUPPORTED = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def _row_norm(v: torch.Tensor) -> torch.Tensor:
    """||v_i|| over every dim but the first (the output unit), shape ``(C_out,)``."""
    return v.flatten(1).norm(dim=1)


def _unit_shape(g: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return g.view((-1,) + (1,) * (v.dim() - 1))


# g as a (C_out, 1, ...) view for a weight of each rank, the shape torch's own weight_norm keeps it in.
_G_VIEW = {rank: (-1,) + (1,) * (rank - 1) for rank in range(1, 6)}
_TWICE_DIFFERENTIABLE: ContextVar[bool] = ContextVar("wninit_twice_differentiable", default=False)


@contextmanager
def twice_differentiable():
    """Inside, wninit's WN layers compute ``w`` with plain autograd ops, so second derivatives are exact.

    Use it around the forward pass of anything that differentiates twice (``create_graph=True``:
    Hessian-vector products, gradient penalties). Outside, the layers use ATen's fused weight-norm
    kernel, as torch's own ``weight_norm`` does, and its double backward drops the ``d||v||/dv`` term
    (torch 2.x): second derivatives wrt ``v`` through it are wrong, first derivatives are exact.

    Examples:
        >>> with twice_differentiable():
        ...     loss = model(x).square().mean()  # then torch.autograd.grad(loss, params, create_graph=True)
    """
    token = _TWICE_DIFFERENTIABLE.set(True)
    try:
        yield
    finally:
        _TWICE_DIFFERENTIABLE.reset(token)


def _wn_weight(v: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """``g * v/||v||`` (norm per output unit), ``g`` of shape ``(C_out,)``: the fast path of the layers.

    ATen's fused weight-norm kernel is what ``torch.nn.utils.parametrizations.weight_norm`` runs; called
    here without the parametrization machinery it is one op forward (norms and w in one pass) and one
    op backward (grad_v and grad_g from grad_w in one pass), and equals torch's weight norm bit for bit.
    Measured against a custom autograd.Function with the analytic gradient, the output-scaling form
    ``(x v^T) * g/||v|| + b`` and plain autograd of ``g*v/||v||``, it is the fastest for the suite's
    Linear and Conv shapes (benchmarks/bench_wn.py, table "implementations"): on a CPU the cost of WN
    beyond the layer's matmul is the number of ops launched and the bytes they move, not their arithmetic.
    ``g`` goes in as a ``(C_out, 1, ...)`` view, as torch keeps it: the kernel would take a 1-d ``g``, but
    the decompositions ``torch.compile`` and the half-precision fallback use broadcast it against the
    last dim, and the view costs no measurable time. Second order goes through :func:`twice_differentiable`
    (not inside ``torch.compile``, which always takes the fused kernel).
    """
    # torch.compile cannot trace ContextVar.get: reading it broke the graph at every WN layer, and
    # each layer shape then recompiled its forward until dynamo's recompile limit sent the rest to
    # eager (seen on an H200, issue 7). is_compiling() is traced as a constant, so a compiled
    # forward never reads the flag and uses the fused kernel.
    if not torch.compiler.is_compiling() and _TWICE_DIFFERENTIABLE.get():
        return v * _unit_shape(g / _row_norm(v), v)
    return torch._weight_norm(v, g.view(_G_VIEW[v.dim()]), 0)


class _WeightNormMixin:
    """Replaces a layer's ``weight`` parameter by ``g`` (per output unit) and ``v`` (its direction).

    ``weight`` stays readable: it is computed as ``g * v/||v||``, so code that reads ``layer.weight``
    keeps working. Nothing is cached across calls: ``v`` and ``g`` change at every optimizer step.
    """

    @property
    def weight(self) -> torch.Tensor:
        params = self._parameters
        if "v" in params:
            return _wn_weight(params["v"], params["g"])
        if "weight" in params:  # during the base class's __init__, before conversion
            return params["weight"]
        raise AttributeError("weight")

    def _convert_to_weight_norm(self) -> None:
        w = self._parameters.pop("weight").detach()
        self.v = nn.Parameter(w.clone())
        self.g = nn.Parameter(_row_norm(w))  # g = ||v||: the wrapped layer computes what it did before

    def reset_parameters(self) -> None:
        if "v" not in self._parameters:
            return super().reset_parameters()
        with torch.no_grad():
            nn.init.kaiming_uniform_(self.v, a=5**0.5)
            self.g.copy_(_row_norm(self.v))
            if self.bias is not None:
                bound = 1 / max(1, self.v[0].numel()) ** 0.5
                nn.init.uniform_(self.bias, -bound, bound)


class WNLinear(_WeightNormMixin, nn.Linear):
    """``nn.Linear`` with weight norm: ``y = (g * v/||v||) x + b``."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, **kw):
        super().__init__(in_features, out_features, bias, **kw)
        self._convert_to_weight_norm()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        params = self._parameters  # read once: each self.<param> goes through nn.Module.__getattr__
        return F.linear(x, _wn_weight(params["v"], params["g"]), params["bias"])


class _WNConvNd(_WeightNormMixin):
    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self._convert_to_weight_norm()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        params = self._parameters
        return self._conv_forward(x, _wn_weight(params["v"], params["g"]), params["bias"])


class WNConv1d(_WNConvNd, nn.Conv1d):
    """``nn.Conv1d`` with weight norm, one ``g`` per output channel."""


class WNConv2d(_WNConvNd, nn.Conv2d):
    """``nn.Conv2d`` with weight norm, one ``g`` per output channel."""


class WNConv3d(_WNConvNd, nn.Conv3d):
    """``nn.Conv3d`` with weight norm, one ``g`` per output channel."""


_WN_CLASS = {nn.Linear: WNLinear, nn.Conv1d: WNConv1d, nn.Conv2d: WNConv2d, nn.Conv3d: WNConv3d}


def _legacy_hook(layer: nn.Module):
    for hook in layer._forward_pre_hooks.values():
        if isinstance(hook, _LegacyWeightNorm) and hook.name == "weight":
            return hook
    return None


def wn_api(layer: nn.Module) -> str | None:
    """Which weight-norm API wraps ``layer``'s weight: ``"wninit"``, ``"torch"``, ``"legacy"`` or None."""
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
    """True when ``layer`` is a Linear/Conv whose weight is weight-normalized by any supported API."""
    return wn_api(layer) is not None


def weight_norm(layer: nn.Module, api: str = "wninit") -> nn.Module:
    """Wrap a Linear or Conv{1,2,3}d layer with weight norm, in place, preserving its function.

    ``g`` is set to ``||v||`` with ``v`` the current weight, so the output is unchanged (as PyTorch does).

    Args:
        layer: an ``nn.Linear`` or ``nn.Conv{1,2,3}d`` not yet weight-normalized.
        api: ``"wninit"`` (this package's layer), ``"torch"`` (parametrizations) or ``"legacy"``.

    Examples:
        >>> layer = weight_norm(nn.Linear(3, 4))
        >>> wn_api(layer)
        'wninit'
    """
    if api not in APIS:
        raise ValueError(f"unknown weight-norm api {api!r}: choose one of {', '.join(map(repr, APIS))}")
    if not isinstance(layer, _SUPPORTED):
        raise ValueError(f"weight norm wraps nn.Linear or nn.Conv1d/2d/3d layers, got {type(layer).__name__}")
    if is_weight_normed(layer):
        raise ValueError(f"this {type(layer).__name__} is already weight-normalized (api {wn_api(layer)!r})")
    if api == "torch":
        return torch.nn.utils.parametrizations.weight_norm(layer, name="weight", dim=0)
    if api == "legacy":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            return torch.nn.utils.weight_norm(layer, name="weight", dim=0)
    wn_class = _WN_CLASS.get(type(layer))
    if wn_class is None:
        raise ValueError(f"api 'wninit' wraps exact nn.Linear/nn.Conv layers, not the subclass {type(layer).__name__}; use api='torch'")
    layer.__class__ = wn_class
    layer._convert_to_weight_norm()
    return layer


def wn_parameters(layer: nn.Module, api: str | None = None) -> tuple[str, torch.Tensor, torch.Tensor]:
    """``(api, g, v)`` of a weight-normalized layer in one lookup: the API's name and its raw parameters
    (``g`` in the API's own shape, e.g. ``(C_out, 1, 1, 1)`` for torch's). For code that writes both in
    place under ``torch.no_grad()``, as ``initialize`` does on 10,000-layer nets; the legacy API then needs
    :func:`set_direction_` to refresh its cached weight. ``api``: the layer's :func:`wn_api`, when the
    caller has it already (the lookup is then skipped)."""
    api = api or wn_api(layer)
    if api == "wninit":
        params = layer._parameters  # direct: initialize() calls this for every layer of 10,000-layer nets
        return api, params["g"], params["v"]
    if api == "torch":
        wn = next(p for p in layer.parametrizations.weight if type(p).__name__ == "_WeightNorm")
        if wn.dim not in (0, None):
            raise ValueError(f"wninit handles weight norm over dim=0 (one g per output unit), this layer uses dim={wn.dim}")
        return api, layer.parametrizations.weight.original0, layer.parametrizations.weight.original1
    if api == "legacy":
        if _legacy_hook(layer).dim != 0:
            raise ValueError("wninit handles weight norm over dim=0 (one g per output unit); this legacy layer uses another dim")
        return api, layer.weight_g, layer.weight_v
    raise ValueError(f"{type(layer).__name__} is not weight-normalized: wrap it first with wninit.weight_norm(layer)")


def _g_and_v(layer: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    return wn_parameters(layer)[1:]


def gain(layer: nn.Module) -> torch.Tensor:
    """The per-unit gains ``g`` of a weight-normalized layer, as a ``(C_out,)`` view of its parameter."""
    g, _ = _g_and_v(layer)
    return g.view(-1)


def direction(layer: nn.Module) -> torch.Tensor:
    """The direction parameter ``v`` of a weight-normalized layer (the weight's shape)."""
    return _g_and_v(layer)[1]


def _refresh_legacy(layer: nn.Module) -> None:
    # The legacy API caches w in layer.weight and recomputes it only in a forward pre-hook: recompute it
    # now so that reading layer.weight right after an init gives the new weight.
    hook = _legacy_hook(layer)
    if hook is not None:
        setattr(layer, hook.name, hook.compute_weight(layer))


def set_gain_(layer: nn.Module, value: torch.Tensor | float) -> nn.Module:
    """Write ``g`` (a scalar or one value per output unit) into a weight-normalized layer."""
    api, g, _ = wn_parameters(layer)
    with torch.no_grad():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            g.fill_(value)  # one op: the common case (a scheme's gain for the whole layer)
        else:
            g.copy_(torch.as_tensor(value, dtype=g.dtype, device=g.device).expand(g.numel()).view_as(g))
    if api == "legacy":
        _refresh_legacy(layer)
    return layer


def set_direction_(layer: nn.Module, value: torch.Tensor) -> nn.Module:
    """Write ``v`` (the weight's shape) into a weight-normalized layer."""
    api, _, v = wn_parameters(layer)
    with torch.no_grad():
        v.copy_(value)
    if api == "legacy":
        _refresh_legacy(layer)
    return layer


def effective_weight(layer: nn.Module) -> torch.Tensor:
    """The weight the layer computes with: ``g*v/||v||`` for a WN layer, ``weight`` otherwise."""
    if not is_weight_normed(layer):
        return layer.weight
    g, v = _g_and_v(layer)
    return v * _unit_shape(g.view(-1) / _row_norm(v), v)


def weight_normed_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(name, layer)`` for every weight-normalized layer of ``model``, in registration order."""
    return [(name, m) for name, m in model.named_modules() if is_weight_normed(m)]


def gain_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The ``g`` parameters of every weight-normalized layer (for e.g. exempting them from weight decay)."""
    return [_g_and_v(m)[0] for _, m in weight_normed_layers(model)]
