"""wninit's weight-normalized layers: `WNLinear`, `WNConv{1,2,3}d`, `WNConvTranspose{1,2,3}d`.

Each replaces its `weight` parameter by `g` (one per normalized unit) and `v` (the weight's shape) and
computes `w = g v/||v||` ([`wninit.weightnorm.formula.wn_weight`][], docs/method.md §2.1) at every forward, with
ATen's fused kernel, or with plain autograd ops inside [`twice_differentiable`][wninit.weightnorm.layers.twice_differentiable]. The functional API
that reads and writes them like torch's two weight-norm APIs is `wninit.weightnorm.access`.
"""
from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar

import torch
import torch.nn.functional as F
from torch import nn

from wninit.weightnorm.formula import unit_norms, wn_weight

__all__ = ["WNLinear", "WNConv1d", "WNConv2d", "WNConv3d", "WNConvTranspose1d", "WNConvTranspose2d",
           "WNConvTranspose3d", "twice_differentiable"]

_TWICE_DIFFERENTIABLE: ContextVar[bool] = ContextVar("wninit_twice_differentiable", default=False)


@contextmanager
def twice_differentiable():
    """Inside, wninit's WN layers compute `w` with plain autograd ops, so second derivatives are exact.

    Use it around the forward pass of anything that differentiates twice (`create_graph=True`:
    Hessian-vector products, gradient penalties). Outside, the layers use ATen's fused weight-norm
    kernel, as torch's own `weight_norm` does, and its double backward drops the `d||v||/dv` term
    (torch 2.x): second derivatives wrt `v` through it are wrong, first derivatives are exact.

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
    """The layers' `w`: [`wn_weight`][wninit.weightnorm.formula.wn_weight] by the fused kernel, by the composite inside [`twice_differentiable`][wninit.weightnorm.layers.twice_differentiable].

    Second order goes through [`twice_differentiable`][wninit.weightnorm.layers.twice_differentiable], but not inside `torch.compile`, which always
    takes the fused kernel.
    """
    # torch.compile cannot trace ContextVar.get: reading it broke the graph at every WN layer, and
    # each layer shape then recompiled its forward until dynamo's recompile limit sent the rest to
    # eager. is_compiling() is traced as a constant, so a compiled
    # forward never reads the flag and uses the fused kernel.
    return wn_weight(v, g, dim, fused=torch.compiler.is_compiling() or not _TWICE_DIFFERENTIABLE.get())


class _WeightNormMixin:
    """Replaces a layer's `weight` parameter by `g` (per output unit) and `v` (its direction).

    `weight` stays readable: it is computed as `g * v/||v||`, so code that reads `layer.weight`
    keeps working. Nothing is cached across calls: `v` and `g` change at every optimizer step.
    `wn_dim`: the weight dim whose slices are normalized (0 unless wrapped with another), None for all.
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
    """`nn.Linear` with weight norm: `y = (g * v/||v||) x + b`."""

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
    """`nn.Conv1d` with weight norm, one `g` per output channel."""


class WNConv2d(_WNConvNd, nn.Conv2d):
    """`nn.Conv2d` with weight norm, one `g` per output channel."""


class WNConv3d(_WNConvNd, nn.Conv3d):
    """`nn.Conv3d` with weight norm, one `g` per output channel."""


class _WNConvTransposeNd(_WeightNormMixin):
    # The base class's forward reads self.weight (the mixin's property) once, after its output-padding
    # arithmetic: no forward of our own to keep in step with torch's.
    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self._convert_to_weight_norm()


class WNConvTranspose1d(_WNConvTransposeNd, nn.ConvTranspose1d):
    """`nn.ConvTranspose1d` with weight norm, one `g` per input channel (`dim=0`, torch's default)."""


class WNConvTranspose2d(_WNConvTransposeNd, nn.ConvTranspose2d):
    """`nn.ConvTranspose2d` with weight norm, one `g` per input channel (`dim=0`, torch's default)."""


class WNConvTranspose3d(_WNConvTransposeNd, nn.ConvTranspose3d):
    """`nn.ConvTranspose3d` with weight norm, one `g` per input channel (`dim=0`, torch's default)."""


_WN_CLASS = {nn.Linear: WNLinear, nn.Conv1d: WNConv1d, nn.Conv2d: WNConv2d, nn.Conv3d: WNConv3d,
             nn.ConvTranspose1d: WNConvTranspose1d, nn.ConvTranspose2d: WNConvTranspose2d,
             nn.ConvTranspose3d: WNConvTranspose3d}


