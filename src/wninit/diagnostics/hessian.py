"""The Hessian's spectral norm at initialization (docs/method.md §7.6, Table 2): power iteration on Hessian-vector products.

The paper's claim (docs/method.md §9 item 11): the log spectral norm of the training loss's Hessian at init is
smallest for the proposed scheme, "which explains why larger learning rates can be used". Table 2 itself is runs
of task "hessian" ([`wninit.suite.train.fit`][wninit.suite.train.single_run.fit], as a `table2_hessian` sweep or `wninit hessian` runs them), each
one call of [`hessian_spectral_norm`][wninit.diagnostics.hessian.hessian_spectral_norm].
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from wninit.errors import UserError
from wninit.weightnorm.access import twice_differentiable
from wninit.weightnorm.formula import wn_weight

__all__ = ["hessian_spectral_norm", "NORMALIZATIONS"]

# How the loss of the K batches is averaged: "mean" divides their sum by K; "reference" by K + 1, as the
# reference's loop does (its counter is incremented once more on the batch that breaks the loop), which
# scales every eigenvalue by K/(K+1): ln ||H|| lower by ln((K+1)/K), 0.028 for its 35 CIFAR batches.
NORMALIZATIONS = ("mean", "reference")

Batches = Sequence[tuple[torch.Tensor, torch.Tensor]]
_FUSED_WEIGHT_NORM = torch._weight_norm


def _check_batches(batches) -> list[tuple[torch.Tensor, torch.Tensor]]:
    batches = list(batches)
    if not batches or any(not isinstance(b, (tuple, list)) or len(b) != 2 for b in batches):
        raise UserError("batches must be a non-empty list of (inputs, targets) pairs, e.g. the first few batches of a loader")
    return [tuple(b) for b in batches]


class _ExactWeightNorm(TorchFunctionMode):
    """Routes every call of ATen's fused `torch._weight_norm` made inside it to the composite
    [`wninit.weightnorm.formula.wn_weight`][] (`fused=False`): `g * v/||v||` in plain autograd ops.

    torch's own `parametrizations.weight_norm` and legacy `weight_norm` call that fused kernel, whose double
    backward drops the `d||v||/dv` term (torch 2.x: Hessian-vector products w.r.t. `v` off by O(1)).
    A torch-function mode is scoped to the `with` block and to this thread: `torch._weight_norm` itself
    is never replaced, so other threads and code outside the block keep the fused kernel.
    """

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is not _FUSED_WEIGHT_NORM:
            return func(*args, **kwargs)
        v, g, dim = _weight_norm_arguments(*args, **kwargs)
        # ATen's dim -1 normalizes the whole tensor; any other negative dim counts from the end
        return wn_weight(v, g, None if dim == -1 else dim % v.dim(), fused=False)


def _weight_norm_arguments(v: torch.Tensor, g: torch.Tensor, dim: int = 0) -> tuple[torch.Tensor, torch.Tensor, int]:
    return v, g, dim


@contextmanager
def _exact_second_derivatives():
    """Weight norm by plain autograd ops for every API while the loss's graph is built: wninit's layers through
    [`wninit.weightnorm.access.twice_differentiable`][wninit.weightnorm.layers.twice_differentiable], torch's and the legacy API through `_ExactWeightNorm`."""
    with twice_differentiable(), _ExactWeightNorm():
        yield


def _dot(a: list[torch.Tensor], b: list[torch.Tensor]) -> torch.Tensor:
    return sum((x.double() * y.double()).sum() for x, y in zip(a, b))


def hessian_spectral_norm(model: nn.Module, batches: Batches, *, iters: int = 20,
                          loss_fn: Callable = F.cross_entropy, seed: int = 0, tol: float | None = None,
                          normalization: str = "mean") -> float:
    r"""The largest eigenvalue magnitude of the Hessian of the mean loss over `batches` w.r.t. all trainable parameters.

    Power iteration, normalized in the 2-norm: $v \leftarrow Hv/\|Hv\|_2$ from a seeded Gaussian
    $v_0$, with $\|Hv\|_2$ for the unit $v$ as the estimate; each
    $Hv$ is a double backward (`torch.autograd.grad` with `create_graph=True`) of
    $\frac{1}{K}\sum_k \text{loss}(\text{model}(x_k), y_k)$ ($\frac{1}{K+1}\sum_k$ with
    `normalization="reference"`, as the reference code divides), the gradient graph built once and
    reused. The estimate is a lower bound of the spectral norm $\|H\|_2$ (the largest eigenvalue magnitude,
    whatever its sign) that never decreases from one iteration to the next, for any symmetric $H$, and
    converges to it. The Rayleigh quotient $v^\top H v$ is no larger and is not used: when the largest
    eigenvalues of both signs are close in magnitude, $v$ keeps a share of each and the quotient cancels
    between them (docs/method.md §7.6). `tol` stops early when the estimate changes by less than `tol`
    relative. The model runs in the mode it is in.

    NOTE: the reference (`src/util/hessian.py`, docs/method.md §7.6) differs: it normalizes by the entry of
    `Hv` of largest magnitude (the inf-norm), takes that signed entry as the eigenvalue, runs M = 40
    iterations with `model.train()`, and re-draws each product's batches from the shuffled, augmented
    loader (its first 10%), so its operator changes between iterations. Here the batches are fixed, so
    every iteration multiplies by the same matrix, which is what makes the estimate monotone.

    Args:
        model: the network at initialization.
        batches: a list of `(inputs, targets)`: the loss is their mean.
        iters: power iterations (Hessian-vector products), at least 1.
        loss_fn: `loss_fn(output, targets)` returning a scalar mean loss.
        seed: seeds the start vector.
        tol: optional relative tolerance for stopping early.
        normalization: `"mean"` (divide the K batches' summed loss by K) or `"reference"` (by K + 1, the
            reference's off-by-one; the norm is then K/(K+1) of the mean's). Table 2's runs use `"mean"`.

    Examples:
        >>> x, y = torch.randn(64, 784), torch.randint(0, 10, (64,))
        >>> hessian_spectral_norm(wninit.models.MLP(784, 64, 2, 10), [(x, y)], iters=10)
    """
    _check_options(iters, tol, normalization)
    batches = _check_batches(batches)
    divisor = len(batches) + (1 if normalization == "reference" else 0)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise UserError("the model has no trainable parameters: its Hessian w.r.t. the parameters is empty")
    with torch.enable_grad(), _exact_second_derivatives():
        loss = sum(loss_fn(model(x), y) for x, y in batches) / divisor
        grads = torch.autograd.grad(loss, params, create_graph=True, allow_unused=True)
    if not torch.isfinite(loss):
        return float("inf")  # the network's output already overflows at init: curvature is unbounded
    # A parameter whose gradient is None or constant has zero rows and columns in H: leave it out.
    kept = [(p, g) for p, g in zip(params, grads) if g is not None and g.requires_grad]
    if not kept:
        return 0.0  # the loss is at most linear in the parameters
    return _power_iteration([p for p, _ in kept], [g for _, g in kept], iters, seed, tol)


def _check_options(iters, tol, normalization) -> None:
    if not isinstance(iters, int) or isinstance(iters, bool) or iters < 1:
        raise UserError(f"iters must be an integer >= 1 (the number of power iterations), got {iters!r}")
    if tol is not None and not tol > 0:
        raise UserError(f"tol must be a positive relative tolerance or None, got {tol!r}")
    if normalization not in NORMALIZATIONS:
        raise UserError(f"normalization must be 'mean' (sum / K) or 'reference' (sum / (K+1), as the reference code), got {normalization!r}")


def _power_iteration(params: list[torch.Tensor], grads: list[torch.Tensor], iters: int, seed: int,
                     tol: float | None) -> float:
    """||Hv||_2 for the unit v of the last of at most `iters` products `Hv` (double backward of `grads`), from a
    seeded Gaussian v.

    Why ||Hv|| and not the Rayleigh quotient v^T H v: with v_k = H^k v_0 / ||H^k v_0||, the estimate is
    r_k = ||H^(k+1) v_0|| / ||H^k v_0||, and Cauchy-Schwarz on <H^k v_0, H^(k+2) v_0> gives r_k <= r_(k+1) for
    any symmetric H; |v_k^T H v_k| <= r_k, and it can be near 0 while v_k still mixes eigenvectors of
    eigenvalues +a and about -a (docs/method.md §7.6)."""
    gen = torch.Generator().manual_seed(seed)
    v = [torch.randn(p.shape, generator=gen, dtype=torch.float64).to(p.device, p.dtype) for p in params]
    norm = math.sqrt(float(_dot(v, v)))
    v = [t / norm for t in v]
    estimate = 0.0
    for _ in range(iters):
        hv = torch.autograd.grad(grads, params, grad_outputs=v, retain_graph=True, allow_unused=True)
        hv = [torch.zeros_like(p) if h is None else h.detach() for h, p in zip(hv, params)]
        previous, estimate = estimate, math.sqrt(float(_dot(hv, hv)))  # ||Hv||, ||v|| = 1
        if estimate == 0.0 or not math.isfinite(estimate):
            return estimate if estimate == 0.0 else float("inf")
        v = [h / estimate for h in hv]
        if tol is not None and estimate - previous <= tol * estimate:
            break
    return estimate
