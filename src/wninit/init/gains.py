"""Tensor initializers in the `torch.nn.init` style: gains, directions, fans.

Everything here is in place (trailing `_`), runs under `torch.no_grad()`, returns the tensor and
accepts `generator=`. The maths of the paper is one number per layer, [`proposed_gain`][wninit.init.gains.proposed_gain]; the
directions `v` are delegated to `torch.nn.init`.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from wninit.errors import UserError
from wninit.init.orthogonal_blocks import ASPECT, cholesky_qr_, is_large, single_threaded
from wninit.weightnorm.access import is_weight_normed, layer_kind, wn_dim

__all__ = [
    "DIRECTIONS",
    "DIRECTION_ALIASES",
    "fan_in_and_fan_out",
    "layer_fans",
    "effective_fan_in",
    "proposed_gain",
    "layer_gain",
    "unit_direction_",
    "check_direction",
    "direction_",
    "orthogonal_direction_",
    "orthogonal_directions_",
    "gaussian_direction_",
]

# "he" is the paper's own label for Gaussian directions ("Proposed (He)"), kept as an alias.
DIRECTIONS = ("orthogonal", "gaussian")
DIRECTION_ALIASES = {"orthogonal": "orthogonal", "gaussian": "gaussian", "he": "gaussian"}


def check_direction(direction: str) -> str:
    """Return the canonical direction name, or raise a ValueError listing the valid ones."""
    try:
        return DIRECTION_ALIASES[direction]
    except (KeyError, TypeError):
        raise UserError(
            f"unknown direction {direction!r}: choose one of 'orthogonal', 'gaussian' (alias 'he')"
        ) from None


def fan_in_and_fan_out(weight: torch.Tensor) -> tuple[int, int]:
    """Fan-in and fan-out of a Linear or Conv{1,2,3}d weight, as PyTorch computes them from its layout.

    For a conv, `fan_in = C_in*prod(k)` and `fan_out = C_out*prod(k)` (docs/method.md §2.1), so
    `fan_in/fan_out = C_in/C_out`. Right for a Linear and an ungrouped Conv only: a ConvTranspose's
    layout `(C_in, C_out/groups, *k)` swaps them and a grouped conv's fan_out counts every group's
    outputs. For a module, [`layer_fans`][wninit.init.gains.layer_fans].
    """
    if weight.dim() < 2:
        raise UserError(f"fan-in and fan-out need a weight with at least 2 dims, got shape {tuple(weight.shape)}")
    receptive = math.prod(weight.shape[2:]) if weight.dim() > 2 else 1
    return weight.shape[1] * receptive, weight.shape[0] * receptive


def _weight_layout(layer: nn.Module) -> tuple[tuple[int, ...], bool]:
    """The weight's shape as the module defines it (not as a tensor was built), and whether it is transposed."""
    if isinstance(layer, nn.Linear):
        return (layer.out_features, layer.in_features), False
    transposed = layer_kind(layer).startswith("ConvTranspose")
    first, second = (layer.in_channels, layer.out_channels) if transposed else (layer.out_channels, layer.in_channels)
    return (first, second // layer.groups, *layer.kernel_size), transposed


def layer_fans(layer: nn.Module) -> tuple[int, int]:
    """Fan-in and fan-out of one group of a Linear, Conv or ConvTranspose module, from the module.

    `fan_in = C_in/groups * prod(k)` and `fan_out = C_out/groups * prod(k)` with `C_in`, `C_out`
    the module's input and output channels, whatever its weight's layout; a Linear is `(in, out)`.
    For an ungrouped Linear or Conv these are PyTorch's fans ([`fan_in_and_fan_out`][wninit.init.gains.fan_in_and_fan_out]).

    Examples:
        >>> layer_fans(nn.ConvTranspose1d(16, 8, 4, stride=2))
        (64, 32)
        >>> layer_fans(nn.Conv2d(64, 64, 3, groups=64))  # depthwise: one input channel per output
        (9, 9)
    """
    if isinstance(layer, nn.Linear):
        return layer.in_features, layer.out_features
    if layer_kind(layer) is None:
        raise UserError(f"fans are defined for Linear, Conv and ConvTranspose layers, got {type(layer).__name__}")
    taps = math.prod(layer.kernel_size)
    return layer.in_channels // layer.groups * taps, layer.out_channels // layer.groups * taps


def proposed_gain(fan_in: int, fan_out: int, gamma: float = 2.0) -> float:
    r"""The gain `g` of the proposed initialization for one weight-normalized layer.

    From "How to Initialize your Network? Robust Initialization for WeightNorm & ResNets" - Arpit,
    Campos & Bengio (2019), docs/method.md §3.1 and §3.4: with unit-norm rows `v`, a layer followed by a ReLU
    preserves the squared activation norm in expectation when

    $$
    g = \sqrt{\gamma \cdot \text{fan\_in} / \text{fan\_out}}
    $$

    with `gamma = 2` (ReLU follows), `1` (no ReLU: shortcut, stem) or `1/B_k` (last conv of a
    residual block in a stage of `B_k` blocks).

    Args:
        fan_in: input units (`C_in*k*k` for a conv).
        fan_out: output units (`C_out*k*k` for a conv).
        gamma: the role's factor.

    Examples:
        >>> proposed_gain(20, 60)  # the reference code's own test: sqrt(2*20/60)
        0.816496580927726
    """
    if fan_in < 1 or fan_out < 1 or not gamma > 0:
        raise UserError(f"proposed_gain needs fan_in, fan_out >= 1 and gamma > 0, got {fan_in}, {fan_out}, {gamma}")
    return math.sqrt(gamma * fan_in / fan_out)


_FROM_LAYER = object()  # layer_gain's dim default: read it from the layer's weight-norm API


def layer_gain(layer: nn.Module, gamma: float = 2.0, dim=_FROM_LAYER) -> float:
    r"""The proposed gain `g` per normalized unit of any Linear, Conv or ConvTranspose layer.

    From "How to Initialize your Network? Robust Initialization for WeightNorm & ResNets" - Arpit,
    Campos & Bengio (2019), docs/method.md §3.1: `g` makes the layer keep `gamma` times the norm of
    its input at each position, `E||y_p||^2 = gamma * ||x_p||^2` (then `gamma = 2` before a ReLU).

    $$
    g = \sqrt{\gamma \cdot s \cdot n_u / \text{fan\_out}}
    $$

    Derivation. Weight norm fixes the norm of each normalized unit (the weight's slices along `dim`,
    `n_u` entries each) to `g`; with directions uniform on the sphere or from a random orthogonal
    matrix, every entry of `w` has mean 0, variance `g^2/n_u`, and distinct entries are uncorrelated.
    An output value `y_{o,p}` sums `C_in/groups` input channels (its group) times `T` taps, so
    `E[y_{o,p}^2] = g^2/n_u * T * ||x_p||^2/groups` (averaged over positions, each group holding its
    share of `||x_p||^2`, or exactly after summing over `o`), and over the `C_out` outputs
    `E||y_p||^2 = g^2 T C_out / (n_u groups) ||x_p||^2 = g^2 T / (n_u fan_out/prod(k)) ||x_p||^2`.

    - Linear and Conv: every output position sees all `T = prod(k)` taps (stride only subsamples
      positions), so `g^2 = gamma n_u / fan_out`. With `dim=0` (one unit per output channel,
      `n_u = fan_in`) this is the paper's `g = sqrt(gamma fan_in/fan_out)` with the fans of one
      group ([`layer_fans`][wninit.init.gains.layer_fans]): PyTorch's fan_out counts all groups and makes `g` too small by
      `sqrt(groups)`.
    - ConvTranspose with stride `s_d` per dim: an input position scatters `prod(k)` taps over
      `prod(s)` new output positions, so an output position receives `T = prod(k)/s` taps on
      average (`s = prod(s_d)`), and `g^2 = gamma s n_u / fan_out`. Under torch's default `dim=0`
      the unit is an *input* channel (`n_u = fan_out`): `g = sqrt(gamma s)`, whatever the widths.
    - `dim=None` (the whole weight one unit): `n_u` is the weight's size; any other dim, its slices.
    - Padding, output padding and dilation change only the border positions, which receive fewer taps.

    For a Linear or ungrouped Conv under `dim=0` the result is [`proposed_gain`][wninit.init.gains.proposed_gain] of PyTorch's fans,
    bit for bit.

    Args:
        layer: an `nn.Linear`, `nn.Conv{1,2,3}d` or `nn.ConvTranspose{1,2,3}d`, WN or not.
        gamma: the factor on the squared norm (2 before a ReLU, 1 before nothing).
        dim: the weight dim of the normalized units (None: the whole weight); by default the layer's
            own ([`wninit.weightnorm.access.wn_dim`][]), 0 for a layer without weight norm.

    Examples:
        >>> layer_gain(nn.Conv2d(64, 64, 3, groups=8), gamma=1.0)  # fans per group: C_in/C_out
        1.0
        >>> layer_gain(nn.ConvTranspose1d(512, 256, 16, stride=8), gamma=1.0)  # per input channel: sqrt(8)
        2.8284271247461903
    """
    return proposed_gain(effective_fan_in(layer, dim), layer_fans(layer)[1], gamma)


def effective_fan_in(layer: nn.Module, dim=_FROM_LAYER) -> int:
    """`s * n_u`, the fan-in that [`layer_gain`][wninit.init.gains.layer_gain] puts in the paper's formula: one unit's
    size `n_u`, times the stride product `s` of a transposed layer (docs/method.md §3.8). It is
    [`layer_fans`][wninit.init.gains.layer_fans]' fan_in for a Linear or Conv normalized along dim 0.

    Examples:
        >>> effective_fan_in(nn.ConvTranspose1d(512, 256, 16, stride=8))  # 8 * 256 * 16, not 512 * 16
        32768
    """
    if dim is _FROM_LAYER:
        dim = wn_dim(layer) if is_weight_normed(layer) else 0
    shape, transposed = _weight_layout(layer)
    units = 1 if dim is None else shape[dim]
    unit_size = math.prod(shape) // units  # n_u
    spread = math.prod(layer.stride) if transposed else 1  # s: new output positions per input position
    return spread * unit_size


_DRAW_DTYPES = (torch.float32, torch.float64)  # what LAPACK's QR takes: bf16/fp16 directions are drawn in float32


def direction_target(weight: torch.Tensor, dim: int | None = 0) -> torch.Tensor:
    """Where a direction for `weight` with normalized units along `dim` is drawn: `weight` itself
    when it is a contiguous float32/64 tensor normalized along dim 0, else a contiguous temporary (float32
    for half precision) shaped `(units, n_u)`, the units as rows, which `copy_direction_` writes
    back. An orthogonal draw into it has orthonormal rows (or columns) over the normalized units; a
    Gaussian draw is i.i.d. either way. A `channels_last` weight thus gets the contiguous weight's draws.
    """
    if dim == 0 and weight.dtype in _DRAW_DTYPES and weight.is_contiguous():
        return weight
    dtype = weight.dtype if weight.dtype in _DRAW_DTYPES else torch.float32
    if dim == 0:
        return torch.empty(weight.shape, dtype=dtype, device=weight.device)
    units = 1 if dim is None else weight.shape[dim]
    return torch.empty((units, weight.numel() // units), dtype=dtype, device=weight.device)


def copy_direction_(weight: torch.Tensor, drawn: torch.Tensor, dim: int | None = 0) -> torch.Tensor:
    """Write a direction drawn into `direction_target`'s tensor back into `weight` (cast, any strides)."""
    if drawn is weight:
        return weight
    with torch.no_grad():
        if dim is None or drawn.shape == weight.shape:
            weight.copy_(drawn.view(weight.shape))
        else:
            moved = weight.movedim(dim, 0)
            moved.copy_(drawn.view(moved.shape))  # a view of weight: writes through
    return weight


def unit_direction_(weight: torch.Tensor, direction: str = "orthogonal", dim: int | None = 0,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """Fill `weight` with a random direction over its normalized units along `dim` (None: one unit).

    `"orthogonal"`: the weight as a `(units, n_u)` matrix, the units along `dim` as rows, is a random
    orthogonal matrix (orthonormal rows when `units <= n_u`), drawn and factored in float32 for
    bf16/fp16 weights and then cast; `"gaussian"`: i.i.d. normal. Any memory format.

    Examples:
        >>> w = unit_direction_(torch.empty(8, 4, 3), dim=1)  # a ConvTranspose1d's weight, per output channel
        >>> torch.allclose(w.movedim(1, 0).flatten(1) @ w.movedim(1, 0).flatten(1).T, torch.eye(4), atol=1e-6)
        True
    """
    target = direction_target(weight, dim)
    direction_(target, direction, generator)
    return copy_direction_(weight, target, dim)


def orthogonal_direction_(weight: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Fill `weight` with a random orthogonal matrix, the weight flattened to `(C_out, fan_in)`.

    Rows are orthonormal when `C_out <= fan_in`, columns otherwise (docs/method.md §3.5a; `torch.nn.init.orthogonal_`).

    Examples:
        >>> w = torch.empty(4, 8)
        >>> orthogonal_direction_(w).matmul(w.T).diag()  # unit rows
        tensor([1.0000, 1.0000, 1.0000, 1.0000])
    """
    # torch.nn.init.orthogonal_(weight, gain=1) step for step (the same draws, bit-identical results,
    # tests/test_init.py), less its final multiply by the gain of 1: on very deep nets that multiply is a
    # share of initialize's time beyond the draws (docs/performance.md).
    if weight.dim() < 2:
        raise UserError(f"an orthogonal direction needs a weight of 2 or more dimensions, got shape {tuple(weight.shape)}")
    if weight.numel() == 0:
        return weight
    rows = weight.size(0)
    with torch.no_grad():
        flat = weight.new_empty((rows, weight.numel() // rows)).normal_(0, 1, generator=generator)
        if flat.device.type == "cpu" and is_large(*flat.shape):
            _factor_large_(flat, torch.get_num_threads())
        else:
            _orthogonalize_(flat)
        weight.view_as(flat).copy_(flat)
    return weight


def _orthogonalize_(weight: torch.Tensor) -> None:
    """The QR half of [`orthogonal_direction_`][wninit.init.gains.orthogonal_direction_], on a weight that already holds its Gaussian draw."""
    rows = weight.size(0)
    flat = weight.view(rows, -1)
    wide = rows < flat.size(1)
    q, r = torch.linalg.qr(flat.t() if wide else flat)
    q *= torch.diag(r, 0).sign()  # Q uniform over the orthogonal group (Mezzadri 2007)
    flat.copy_(q.t() if wide else q)


_BATCH_ELEMENTS = 1 << 22  # 16 MiB of float32 per batched QR: a bound on the stacked copy, not a tuning knob
_SMALL = 4096  # elements: below, a QR costs less than its dispatch; above, batching measured slower (docs/performance.md)


def _same_shape_batches(weights: list[torch.Tensor]) -> list[list[torch.Tensor]]:
    """`weights` grouped by shape and dtype, in order within a group, each group at most `_BATCH_ELEMENTS`.

    Only small matrices (`_SMALL`) of a whole number of 64-byte lines share a batch: each then starts on a line in the batch as
    it does alone, and LAPACK's vector kernels round it the same (a 7x5 float32 matrix at an odd offset does
    not); the others are factored one by one."""
    groups: dict[tuple, list[list[torch.Tensor]]] = {}
    for w in weights:
        if (w.numel() * w.element_size()) % 64 or w.numel() > _SMALL:
            groups[(id(w),)] = [[w]]
            continue
        batches = groups.setdefault((w.shape, w.dtype), [[]])
        if batches[-1] and (len(batches[-1]) + 1) * w.numel() > _BATCH_ELEMENTS:
            batches.append([])
        batches[-1].append(w)
    return [b for batches in groups.values() for b in batches]


def _orthogonalize_batch_(weights: list[torch.Tensor]) -> None:
    """`_orthogonalize_` on each of `weights` (one shape), as one batched QR: LAPACK factors each matrix of
    the batch as it factors it alone (the same bits, tests/test_init.py), without one dispatch per layer and
    per step, most of the cost on a deep net of small layers (docs/performance.md)."""
    rows = weights[0].size(0)
    batch = torch.stack([w.view(rows, -1) for w in weights])
    wide = rows < batch.size(2)
    q, r = torch.linalg.qr(batch.mT if wide else batch)
    q *= r.diagonal(dim1=-2, dim2=-1).sign().unsqueeze(-2)  # Q uniform over the orthogonal group (Mezzadri 2007)
    q = q.mT if wide else q
    for w, qi in zip(weights, q):
        w.view(rows, -1).copy_(qi)


def _factor_large_(flat: torch.Tensor, threads: int) -> None:
    """The QR of a large draw (`wninit.init.orthogonal_blocks`): Cholesky QR in fixed blocks on `threads`
    workers where it is wide enough, else Householder on the calling thread with all of its threads."""
    rows, cols = flat.shape
    if max(rows, cols) >= ASPECT * min(rows, cols) and cholesky_qr_(flat, threads):
        return
    _orthogonalize_(flat)


def _factor_all(weights: list[torch.Tensor], threads: int) -> None:
    """QR every weight (each holding its draw): each large one (`_factor_large_`) in turn, then the others
    on one LAPACK thread each, up to `threads` side by side (here when torch has one thread)."""
    small = []
    for w in weights:
        flat = w.view(w.size(0), -1)
        (_factor_large_(flat, threads) if is_large(*flat.shape) else small.append(w))
    workers = max(1, min(threads, len(small)))

    def factor(chunk):
        for group in _same_shape_batches(chunk):
            _orthogonalize_batch_(group) if len(group) > 1 else _orthogonalize_(group[0])

    single_threaded([lambda chunk=small[i::workers]: factor(chunk) for i in range(workers)] if small else [], threads)


def orthogonal_directions_(weights: list[torch.Tensor], generator: torch.Generator | None = None) -> list[torch.Tensor]:
    """[`orthogonal_direction_`][wninit.init.gains.orthogonal_direction_] on each of `weights` in turn, with the QRs run side by side.

    The Gaussian draws are made in order from `generator`, one stream, as the one-by-one calls draw
    it. The QR factorizations that follow are independent per weight. They run on as many Python threads
    as `torch.get_num_threads()` allows (torch releases the GIL inside them), each QR on one LAPACK
    thread. The result is bit for bit that of the one-by-one calls at one thread, whatever the thread
    count: a seed gives the same weights on any machine. `torch.nn.init.orthogonal_` alone does not
    (MKL's threaded QR rounds differently from its serial one). Why: on very deep nets the draws and QRs
    are all of an orthogonal init's time, and on a CPU the QR of a small matrix gains little from a second
    thread while QRs side by side share the threads (docs/performance.md).
    A large layer (`wninit.init.orthogonal_blocks.is_large`; none in the paper's models) is factored
    first, alone, on all the threads: by Cholesky QR in fixed blocks where it is wide (the same bits at any
    thread count, not Householder's), else by Householder on the calling thread (its bits then depend on
    the thread count, as `torch.nn.init.orthogonal_`'s do); docs/method.md §3.5a.
    A non-contiguous CPU weight is drawn into a contiguous copy, factored with the others and written
    back; a weight on another device is drawn and factored there, in its turn.

    The thread counts are left as they were found: the calling thread's is never changed, and the count
    new threads start with, which the workers' `torch.set_num_threads(1)` changes, is put back when
    they are done. NOTE: meanwhile, a thread that another Python thread starts in this process begins
    with one torch thread.

    Examples:
        >>> ws = [torch.empty(4, 8) for _ in range(3)]
        >>> _ = orthogonal_directions_(ws, torch.Generator().manual_seed(0))
        >>> bool(torch.allclose(ws[2] @ ws[2].T, torch.eye(4), atol=1e-6))
        True
    """
    pending = []  # (weight, the contiguous (rows, cols) matrix its draw and QR are in)
    with torch.no_grad():
        for w in weights:
            if w.dim() < 2 or w.numel() == 0 or w.device.type != "cpu":
                orthogonal_direction_(w, generator)  # one sentence for a 1-d weight; nothing to draw when empty
                continue
            flat = w if w.is_contiguous() else w.new_empty((w.size(0), w.numel() // w.size(0)))
            flat.normal_(0, 1, generator=generator)  # what orthogonal_direction_ draws into its (rows, cols) copy
            pending.append((w, flat))
        _factor_all([flat for _, flat in pending], torch.get_num_threads())
        for w, flat in pending:
            if flat is not w:
                w.copy_(flat.view(w.shape))
    return weights


def gaussian_direction_(weight: torch.Tensor, generator: torch.Generator | None = None,
                        gain: float | None = None) -> torch.Tensor:
    r"""Fill `weight` with Gaussian values, $\mathcal{N}(0, \text{gain}^2/\text{fan\_in})$.

    Under weight norm only the direction `v/||v||` matters at init, but not under SGD: the step on a
    direction scales with `1/||v||^2` (docs/method.md §3.5a), so the scale of `v` is part of a scheme.
    `gain=None` is He-normal (`torch.nn.init.kaiming_normal_`, gain `sqrt(2)`, `||v_i|| ~ sqrt(2)`):
    what the PyTorch-default WN baseline copies into `g` and what datadep and the plain He init draw.
    `gain=1` is the reference code's draw for its proposed init (`N(0, 1/fan_in)`, `||v_i|| ~ 1`).

    Args:
        weight: a Linear or Conv weight, filled in place.
        generator: the random stream.
        gain: the std times `sqrt(fan_in)`; None for He-normal.

    Examples:
        >>> w = gaussian_direction_(torch.empty(64, 1000), torch.Generator().manual_seed(0))
        >>> round(w.norm(dim=1).mean().item(), 1)
        1.4
        >>> w = gaussian_direction_(torch.empty(64, 1000), torch.Generator().manual_seed(0), gain=1.0)
        >>> round(w.norm(dim=1).mean().item(), 1)
        1.0
    """
    if gain is None:
        return torch.nn.init.kaiming_normal_(weight, mode="fan_in", nonlinearity="relu", generator=generator)
    if not gain > 0:
        raise UserError(f"a Gaussian direction needs gain > 0 (its std is gain/sqrt(fan_in)), got {gain!r}")
    fan_in, _ = fan_in_and_fan_out(weight)
    with torch.no_grad():
        return weight.normal_(0, gain / math.sqrt(fan_in), generator=generator)


def direction_(weight: torch.Tensor, direction: str = "orthogonal", generator: torch.Generator | None = None,
               gaussian_gain: float | None = None) -> torch.Tensor:
    """Fill `weight` with a random direction: `"orthogonal"` or `"gaussian"` (alias `"he"`).

    `gaussian_gain` is [`gaussian_direction_`][wninit.init.gains.gaussian_direction_]'s `gain` (None: He-normal); orthogonal rows are unit.
    """
    if check_direction(direction) == "orthogonal":
        return orthogonal_direction_(weight, generator)
    return gaussian_direction_(weight, generator, gaussian_gain)
