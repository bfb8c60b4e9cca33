r"""The weight-norm formula, written once: `w_u = g_u v_u / ||v_u||` per normalized unit `u`.

Weight normalization - Salimans & Kingma (2016), docs/method.md §2.1. Every place in wninit that turns
`g` and `v` into a weight calls [`wn_weight`][wninit.weightnorm.formula.wn_weight]: the WN layers' forward, `effective_weight`,
the float64 fold of checkpoints and `remove_weight_norm`, the stacked ensemble's members, the
plain layers `initialize` writes `g v/||v||` into. A leaf module: it needs torch only.
"""
from __future__ import annotations

import torch

__all__ = ["unit_norms", "wn_weight"]

# g as a (C_out, 1, ...) view for a weight of each rank, the shape torch's own weight_norm keeps it in.
_G_VIEW = {rank: (-1,) + (1,) * (rank - 1) for rank in range(1, 6)}


def unit_norms(v: torch.Tensor, dim: int | None = 0) -> torch.Tensor:
    """`||v_u||` for every normalized unit `u` of `v` along `dim` (None: the whole tensor), shape `(units,)`."""
    if dim == 0:
        return v.flatten(1).norm(dim=1)
    if dim is None:
        return v.norm().view(1)
    return v.movedim(dim, 0).flatten(1).norm(dim=1)


def _unit_shape(g: torch.Tensor, v: torch.Tensor, dim: int | None = 0) -> torch.Tensor:
    """`g` viewed to broadcast one value per unit along `dim` against `v`."""
    return g.view(tuple(-1 if d == dim else 1 for d in range(v.dim())))


def wn_weight(v: torch.Tensor, g: torch.Tensor | float, dim: int | None = 0, *, fused: bool = True) -> torch.Tensor:
    r"""The weight `w` of a weight-normalized layer from its direction `v` and gains `g`.

    From "Weight Normalization: A Simple Reparameterization to Accelerate Training of Deep Neural
    Networks" - Salimans & Kingma (2016), as used by "How to Initialize your Network? Robust
    Initialization for WeightNorm & ResNets" - Arpit, Campos & Bengio (2019), docs/method.md §2.1:

    $$
    w_u = g_u \, v_u / \lVert v_u \rVert
    $$

    per normalized unit `u`, the slices of `v` along `dim`. `fused=True` runs ATen's fused
    weight-norm kernel, what `torch.nn.utils.parametrizations.weight_norm` runs: one op forward, one
    backward, bit for bit torch's weight norm; its double backward drops the `d||v||/dv` term (torch
    2.x). `fused=False` is the composite `v * (g/||v||)` of plain autograd ops, exact to second order.

    Args:
        v: the direction, the weight's shape.
        g: one gain per unit (any shape with that many elements); with `fused=False` also one number
            for every unit.
        dim: the weight dim of the normalized units (0: output units of a Linear or Conv, as every API's
            default), None for the whole weight as one unit.
        fused: the fused kernel (first derivatives only) or the composite (any order).

    Examples:
        >>> v, g = torch.randn(4, 3), torch.full((4,), 2.0)
        >>> wn_weight(v, g).norm(dim=1)
        tensor([2.0000, 2.0000, 2.0000, 2.0000])
    """
    if not fused:
        # A Python number divides as ``norms.reciprocal() * g`` (Tensor.__rtruediv__): kept as it is, the
        # weights initialize() writes into plain layers keep their bits.
        # A 1-d g (wninit's layers) goes in as it is: a reshape node, even a no-op one, changes the order in
        # which autograd sums g's second-order terms, and so their last bits.
        scale = (g if isinstance(g, (int, float)) or g.dim() == 1 else g.reshape(-1)) / unit_norms(v, dim)
        return v * _unit_shape(scale, v, dim)
    # Why the fused kernel: called without the parametrization machinery it is one op forward (norms and w
    # in one pass) and one op backward (grad_v and grad_g from grad_w in one pass). Against a custom
    # autograd.Function with the analytic gradient, the output-scaling form (x v^T) * g/||v|| + b and the
    # composite, it is the fastest for the suite's Linear and Conv shapes (docs/performance.md): on a CPU
    # the cost of WN beyond the layer's matmul is the number of ops launched and the bytes they move, not
    # their arithmetic. g goes in as a (C_out, 1, ...) view, as torch
    # keeps it: the kernel would take a 1-d g, but the decompositions torch.compile and the half-precision
    # fallback use broadcast it against the last dim, and the view costs no measurable time.
    if dim == 0:
        return torch._weight_norm(v, g.view(_G_VIEW[v.dim()]), 0)
    # torch's own weight norm calls the kernel with -1 for the whole weight.
    return torch._weight_norm(v, _unit_shape(g.reshape(-1), v, dim), -1 if dim is None else dim)
