"""Weight normalization for Linear, Conv and ConvTranspose layers, whichever API holds it.

``w_u = g_u * v_u / ||v_u||`` per normalized unit ``u`` (Salimans & Kingma 2016; docs/method.md §2.1). The unit is a
slice of the weight along ``dim``: ``dim=0`` (the default of every API) is one output unit of a Linear or
Conv, but one *input* channel of a ConvTranspose, whose weight is ``(C_in, C_out/groups, *k)``;
``dim=None`` normalizes the whole weight as one unit. Every ``dim`` is read from the API that holds it
(:func:`wn_dim`). Three implementations are read and written through one API (:func:`gain`,
:func:`direction`, :func:`set_gain_`, :func:`set_direction_`):

- ``"wninit"``: this package's layers (:class:`WNLinear`, :class:`WNConv2d`, :class:`WNConvTranspose1d`,
  ...), parameters ``g`` of shape ``(units,)`` and ``v`` of the weight's shape; what the suite's models use;
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

from .errors import UserError

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
    "gain",
    "direction",
    "wn_parameters",
    "unit_norms",
    "set_gain_",
    "set_direction_",
    "effective_weight",
    "weight_normed_layers",
    "gain_parameters",
    "twice_differentiable",
]

APIS = ("wninit", "torch", "legacy")
_SUPPORTED = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


def layer_kind(layer: nn.Module) -> str | None:
    """The torch layer kind of ``layer`` (``"Linear"``, ``"ConvTranspose1d"``, ...), WN or not; None for others."""
    for kind in _SUPPORTED:
        if isinstance(layer, kind):
            return kind.__name__
    return None


def unit_norms(v: torch.Tensor, dim: int | None = 0) -> torch.Tensor:
    """``||v_u||`` for every normalized unit ``u`` of ``v`` along ``dim`` (None: the whole tensor), shape ``(units,)``."""
    if dim == 0:
        return v.flatten(1).norm(dim=1)
    if dim is None:
        return v.norm().view(1)
    return v.movedim(dim, 0).flatten(1).norm(dim=1)


def _unit_shape(g: torch.Tensor, v: torch.Tensor, dim: int | None = 0) -> torch.Tensor:
    """``g`` viewed to broadcast one value per unit along ``dim`` against ``v``."""
    return g.view(tuple(-1 if d == dim else 1 for d in range(v.dim())))


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


def _wn_weight(v: torch.Tensor, g: torch.Tensor, dim: int | None = 0) -> torch.Tensor:
    """``g * v/||v||`` (norm per unit along ``dim``), ``g`` of shape ``(units,)``: the fast path of the layers.

    ATen's fused weight-norm kernel is what ``torch.nn.utils.parametrizations.weight_norm`` runs; called
    here without the parametrization machinery it is one op forward (norms and w in one pass) and one
    op backward (grad_v and grad_g from grad_w in one pass), and equals torch's weight norm bit for bit.
    Measured against a custom autograd.Function with the analytic gradient, the output-scaling form
    ``(x v^T) * g/||v|| + b`` and plain autograd of ``g*v/||v||``, it is the fastest for the suite's
    Linear and Conv shapes (docs/performance.md, the weight-norm findings): on a CPU the cost of WN
    beyond the layer's matmul is the number of ops launched and the bytes they move, not their arithmetic.
    ``g`` goes in as a ``(C_out, 1, ...)`` view, as torch keeps it: the kernel would take a 1-d ``g``, but
    the decompositions ``torch.compile`` and the half-precision fallback use broadcast it against the
    last dim, and the view costs no measurable time. Second order goes through :func:`twice_differentiable`
    (not inside ``torch.compile``, which always takes the fused kernel). ``dim`` other than 0 (a
    transposed conv normalized per output channel, ``None`` for the whole weight) takes the same kernel,
    which torch's own weight norm calls with ``-1`` for the whole weight.
    """
    if dim != 0:
        if not torch.compiler.is_compiling() and _TWICE_DIFFERENTIABLE.get():
            return v * _unit_shape(g.view(-1) / unit_norms(v, dim), v, dim)
        return torch._weight_norm(v, _unit_shape(g, v, dim), -1 if dim is None else dim)
    # torch.compile cannot trace ContextVar.get: reading it broke the graph at every WN layer, and
    # each layer shape then recompiled its forward until dynamo's recompile limit sent the rest to
    # eager (seen on an H200). is_compiling() is traced as a constant, so a compiled
    # forward never reads the flag and uses the fused kernel.
    if not torch.compiler.is_compiling() and _TWICE_DIFFERENTIABLE.get():
        return v * _unit_shape(g / unit_norms(v), v)
    return torch._weight_norm(v, g.view(_G_VIEW[v.dim()]), 0)


class _WeightNormMixin:
    """Replaces a layer's ``weight`` parameter by ``g`` (per output unit) and ``v`` (its direction).

    ``weight`` stays readable: it is computed as ``g * v/||v||``, so code that reads ``layer.weight``
    keeps working. Nothing is cached across calls: ``v`` and ``g`` change at every optimizer step.
    ``wn_dim``: the weight dim whose slices are normalized (0 unless wrapped with another), None for all.
    """

    wn_dim: int | None = 0

    @property
    def weight(self) -> torch.Tensor:
        params = self._parameters
        if "v" in params:
            return _wn_weight(params["v"], params["g"], self.wn_dim)
        if "weight" in params:  # during the base class's __init__, before conversion
            return params["weight"]
        raise AttributeError("weight")

    def _convert_to_weight_norm(self, dim: int | None = 0) -> None:
        w = self._parameters.pop("weight").detach()
        if dim != 0:
            self.wn_dim = dim  # an instance attribute only off the default: dim-0 layers stay as they were
        self.v = nn.Parameter(w.clone())
        self.g = nn.Parameter(unit_norms(w, dim))  # g = ||v||: the wrapped layer computes what it did before

    def reset_parameters(self) -> None:
        if "v" not in self._parameters:
            return super().reset_parameters()
        with torch.no_grad():
            nn.init.kaiming_uniform_(self.v, a=5**0.5)
            self.g.copy_(unit_norms(self.v, self.wn_dim))
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
        return F.linear(x, _wn_weight(params["v"], params["g"], self.wn_dim), params["bias"])


class _WNConvNd(_WeightNormMixin):
    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self._convert_to_weight_norm()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        params = self._parameters
        return self._conv_forward(x, _wn_weight(params["v"], params["g"], self.wn_dim), params["bias"])


class WNConv1d(_WNConvNd, nn.Conv1d):
    """``nn.Conv1d`` with weight norm, one ``g`` per output channel."""


class WNConv2d(_WNConvNd, nn.Conv2d):
    """``nn.Conv2d`` with weight norm, one ``g`` per output channel."""


class WNConv3d(_WNConvNd, nn.Conv3d):
    """``nn.Conv3d`` with weight norm, one ``g`` per output channel."""


class _WNConvTransposeNd(_WeightNormMixin):
    # The base class's forward reads self.weight (the mixin's property) once, after its output-padding
    # arithmetic: no forward of our own to keep in step with torch's.
    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self._convert_to_weight_norm()


class WNConvTranspose1d(_WNConvTransposeNd, nn.ConvTranspose1d):
    """``nn.ConvTranspose1d`` with weight norm, one ``g`` per input channel (``dim=0``, torch's default)."""


class WNConvTranspose2d(_WNConvTransposeNd, nn.ConvTranspose2d):
    """``nn.ConvTranspose2d`` with weight norm, one ``g`` per input channel (``dim=0``, torch's default)."""


class WNConvTranspose3d(_WNConvTransposeNd, nn.ConvTranspose3d):
    """``nn.ConvTranspose3d`` with weight norm, one ``g`` per input channel (``dim=0``, torch's default)."""


_WN_CLASS = {nn.Linear: WNLinear, nn.Conv1d: WNConv1d, nn.Conv2d: WNConv2d, nn.Conv3d: WNConv3d,
             nn.ConvTranspose1d: WNConvTranspose1d, nn.ConvTranspose2d: WNConvTranspose2d,
             nn.ConvTranspose3d: WNConvTranspose3d}


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
    """True when ``layer`` is a Linear/Conv/ConvTranspose whose weight is weight-normalized by any supported API."""
    return wn_api(layer) is not None


def _check_dim(dim, layer: nn.Module) -> int | None:
    """``dim`` as a weight dimension of ``layer`` (None: the whole weight), or one sentence on what is wrong."""
    rank = 2 if isinstance(layer, nn.Linear) else 2 + len(layer.kernel_size)
    if dim is None or (isinstance(dim, int) and not isinstance(dim, bool) and 0 <= dim < rank):
        return dim
    raise UserError(f"weight-norm dim must be a dimension 0..{rank - 1} of this {type(layer).__name__}'s "
                     f"weight or None for the whole weight, got {dim!r}")


def weight_norm(layer: nn.Module, api: str = "wninit", dim: int | None = 0) -> nn.Module:
    """Wrap one Linear, Conv{1,2,3}d or ConvTranspose{1,2,3}d layer with weight norm, in place, preserving its function.

    ``g`` is set to ``||v||`` with ``v`` the current weight, so the output is unchanged (as PyTorch does).
    For a whole model (every layer, BatchNorm removed), use :func:`wninit.weight_norm`.

    Args:
        layer: an ``nn.Linear``, ``nn.Conv{1,2,3}d`` or ``nn.ConvTranspose{1,2,3}d`` not yet weight-normalized.
        api: ``"wninit"`` (this package's layer), ``"torch"`` (parametrizations) or ``"legacy"``.
        dim: the weight dim whose slices get one ``g`` each, as in torch (0: output units of a Linear or
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
        return torch.nn.utils.parametrizations.weight_norm(layer, name="weight", dim=dim)
    if api == "legacy":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            return torch.nn.utils.weight_norm(layer, name="weight", dim=dim)
    wn_class = _WN_CLASS.get(type(layer))
    if wn_class is None:
        raise UserError(f"api 'wninit' wraps exact nn.Linear/Conv/ConvTranspose layers, not the subclass {type(layer).__name__}; use api='torch'")
    layer.__class__ = wn_class
    layer._convert_to_weight_norm(dim)
    return layer


def wn_parameters(layer: nn.Module, api: str | None = None) -> tuple[str, torch.Tensor, torch.Tensor]:
    """``(api, g, v)`` of a weight-normalized layer in one lookup: the API's name and its raw parameters
    (``g`` in the API's own shape, e.g. ``(C_out, 1, 1, 1)`` for torch's). For code that writes both in
    place under ``torch.no_grad()``, as ``initialize`` does on 10,000-layer nets; the legacy API then needs
    :func:`set_direction_` to refresh its cached weight. ``api``: the layer's :func:`wn_api`, when the
    caller has it already (the lookup is then skipped). Which dim ``g`` runs along: :func:`wn_dim`."""
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
    """The weight dim along which ``layer`` has one ``g`` per slice (its normalized units), None for the whole weight.

    Read from the API: the wninit layer's ``wn_dim``, the torch parametrization's ``dim``, the legacy
    hook's ``dim``; torch stores ``dim=None`` as ``-1``, read back here as None.

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


def _g_and_v(layer: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    return wn_parameters(layer)[1:]


def gain(layer: nn.Module) -> torch.Tensor:
    """The per-unit gains ``g`` of a weight-normalized layer, as a ``(units,)`` view of its parameter (:func:`wn_dim`)."""
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
    """Write ``g`` (a scalar or one value per normalized unit, :func:`wn_dim`) into a weight-normalized layer."""
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
    dim = wn_dim(layer)
    return v * _unit_shape(g.view(-1) / unit_norms(v, dim), v, dim)


def weight_normed_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(name, layer)`` for every weight-normalized layer of ``model``, in registration order."""
    return [(name, m) for name, m in model.named_modules() if is_weight_normed(m)]


def gain_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The ``g`` parameters of every weight-normalized layer (for e.g. exempting them from weight decay)."""
    return [_g_and_v(m)[0] for _, m in weight_normed_layers(model)]
