"""Tensor initializers in the ``torch.nn.init`` style: gains, directions, fans.

Everything here is in place (trailing ``_``), runs under ``torch.no_grad()``, returns the tensor and
accepts ``generator=``. The maths of the paper is one number per layer, :func:`proposed_gain`; the
directions ``v`` are delegated to ``torch.nn.init``.
"""
from __future__ import annotations

import math

import torch

__all__ = [
    "DIRECTIONS",
    "fan_in_and_fan_out",
    "proposed_gain",
    "check_direction",
    "direction_",
    "orthogonal_direction_",
    "orthogonal_directions_",
    "gaussian_direction_",
    "zero_bias_",
]

# "he" is the paper's own label for Gaussian directions ("Proposed (He)"), kept as an alias.
DIRECTIONS = ("orthogonal", "gaussian")
_DIRECTION_ALIASES = {"orthogonal": "orthogonal", "gaussian": "gaussian", "he": "gaussian"}


def check_direction(direction: str) -> str:
    """Return the canonical direction name, or raise a ValueError listing the valid ones."""
    try:
        return _DIRECTION_ALIASES[direction]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown direction {direction!r}: choose one of 'orthogonal', 'gaussian' (alias 'he')"
        ) from None


def fan_in_and_fan_out(weight: torch.Tensor) -> tuple[int, int]:
    """Fan-in and fan-out of a Linear or Conv{1,2,3}d weight, as PyTorch computes them.

    For a conv, ``fan_in = C_in*prod(k)`` and ``fan_out = C_out*prod(k)`` (spec §2.1), so
    ``fan_in/fan_out = C_in/C_out``.
    """
    if weight.dim() < 2:
        raise ValueError(f"fan-in and fan-out need a weight with at least 2 dims, got shape {tuple(weight.shape)}")
    receptive = math.prod(weight.shape[2:]) if weight.dim() > 2 else 1
    return weight.shape[1] * receptive, weight.shape[0] * receptive


def proposed_gain(fan_in: int, fan_out: int, gamma: float = 2.0) -> float:
    r"""The gain ``g`` of the proposed initialization for one weight-normalized layer.

    From "How to Initialize your Network? Robust Initialization for WeightNorm & ResNets" - Arpit,
    Campos & Bengio (2019), spec §3.1 and §3.4: with unit-norm rows ``v``, a layer followed by a ReLU
    preserves the squared activation norm in expectation when

    .. math::
        g = \sqrt{\gamma \cdot \text{fan\_in} / \text{fan\_out}}

    with ``gamma = 2`` (ReLU follows), ``1`` (no ReLU: shortcut, stem) or ``1/B_k`` (last conv of a
    residual block in a stage of ``B_k`` blocks).

    Args:
        fan_in: input units (``C_in*k*k`` for a conv).
        fan_out: output units (``C_out*k*k`` for a conv).
        gamma: the role's factor.

    Examples:
        >>> proposed_gain(20, 60)  # the reference code's own test: sqrt(2*20/60)
        0.816496580927726
    """
    if fan_in < 1 or fan_out < 1 or not gamma > 0:
        raise ValueError(f"proposed_gain needs fan_in, fan_out >= 1 and gamma > 0, got {fan_in}, {fan_out}, {gamma}")
    return math.sqrt(gamma * fan_in / fan_out)


def orthogonal_direction_(weight: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Fill ``weight`` with a random orthogonal matrix, the weight flattened to ``(C_out, fan_in)``.

    Rows are orthonormal when ``C_out <= fan_in``, columns otherwise (spec §3.5a; ``torch.nn.init.orthogonal_``).

    Examples:
        >>> w = torch.empty(4, 8)
        >>> orthogonal_direction_(w).matmul(w.T).diag()  # unit rows
        tensor([1.0000, 1.0000, 1.0000, 1.0000])
    """
    # torch.nn.init.orthogonal_(weight, gain=1) step for step (the same draws, bit-identical results,
    # tests/test_init.py), less its final multiply by the gain of 1: on a 10,000-layer net that multiply
    # was a measurable share of initialize's time beyond the draws (issue 7, benchmarks/bench_init.py).
    if weight.dim() < 2:
        raise ValueError(f"an orthogonal direction needs a weight of 2 or more dimensions, got shape {tuple(weight.shape)}")
    if weight.numel() == 0:
        return weight
    rows = weight.size(0)
    with torch.no_grad():
        flat = weight.new_empty((rows, weight.numel() // rows)).normal_(0, 1, generator=generator)
        _orthogonalize_(flat)
        weight.view_as(flat).copy_(flat)
    return weight


def _orthogonalize_(weight: torch.Tensor) -> None:
    """The QR half of :func:`orthogonal_direction_`, on a weight that already holds its Gaussian draw."""
    rows = weight.size(0)
    flat = weight.view(rows, -1)
    wide = rows < flat.size(1)
    q, r = torch.linalg.qr(flat.t() if wide else flat)
    q *= torch.diag(r, 0).sign()  # Q uniform over the orthogonal group (Mezzadri 2007)
    flat.copy_(q.t() if wide else q)


def _factor_all(weights: list[torch.Tensor], threads: int) -> None:
    """QR every weight (each holding its draw), on ``threads`` Python threads when there are several."""
    if threads < 2 or len(weights) < 2:
        for w in weights:
            _orthogonalize_(w)
        return
    from concurrent.futures import ThreadPoolExecutor

    def factor(chunk):
        torch.set_num_threads(1)  # OpenMP's thread count is per native thread: this one's too
        with torch.no_grad():  # grad mode is per thread
            for w in chunk:
                _orthogonalize_(w)

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(factor, [weights[i::threads] for i in range(threads)]))  # re-raises a worker's error


def orthogonal_directions_(weights: list[torch.Tensor], generator: torch.Generator | None = None) -> list[torch.Tensor]:
    """:func:`orthogonal_direction_` on each of ``weights`` in turn, with the QRs run side by side.

    The Gaussian draws are made in order from ``generator``, one stream, as the one-by-one calls draw
    it. The QR factorizations that follow are independent per weight. They run on as many Python threads
    as ``torch.get_num_threads()`` allows (torch releases the GIL inside them), each QR on one LAPACK
    thread. The result is bit for bit that of the one-by-one calls at one thread, whatever the thread
    count: a seed gives the same weights on any machine. ``torch.nn.init.orthogonal_`` alone does not
    (MKL's threaded QR rounds differently from its serial one, ~2e-7). Why: on a 10,000-layer net the
    draws and QRs are all of an orthogonal init's time. On a CPU, MKL's QR of a small matrix gains nothing
    from a second thread, while two QRs side by side take half the time (issue 7, benchmarks/bench_init.py).
    Weights that are not contiguous CPU tensors take the one-by-one path in their turn.

    NOTE: torch's thread count is per process. For the length of this call it is 1, then restored, so
    torch ops that another Python thread runs meanwhile run on one thread.

    Examples:
        >>> ws = [torch.empty(4, 8) for _ in range(3)]
        >>> _ = orthogonal_directions_(ws, torch.Generator().manual_seed(0))
        >>> bool(torch.allclose(ws[2] @ ws[2].T, torch.eye(4), atol=1e-6))
        True
    """
    threads = torch.get_num_threads()
    drawn = []
    # One LAPACK thread per QR, set for the whole call: the QRs then round as at one thread, and several
    # of them side by side do not oversubscribe the cores with MKL's own threads (6x slower, measured).
    if threads > 1:
        torch.set_num_threads(1)
    try:
        with torch.no_grad():
            for w in weights:
                if w.dim() >= 2 and w.numel() and w.device.type == "cpu" and w.is_contiguous():
                    w.normal_(0, 1, generator=generator)  # what orthogonal_direction_ draws into its (rows, cols) copy
                    drawn.append(w)
                else:
                    orthogonal_direction_(w, generator)
            _factor_all(drawn, threads)
    finally:
        if threads > 1:
            torch.set_num_threads(threads)
    return weights


def gaussian_direction_(weight: torch.Tensor, generator: torch.Generator | None = None,
                        gain: float | None = None) -> torch.Tensor:
    r"""Fill ``weight`` with Gaussian values, :math:`\mathcal{N}(0, \text{gain}^2/\text{fan\_in})`.

    Under weight norm only the direction ``v/||v||`` matters at init, but not under SGD: the step on a
    direction scales with ``1/||v||^2`` (docs/method.md §3.5a), so the scale of ``v`` is part of a scheme.
    ``gain=None`` is He-normal (``torch.nn.init.kaiming_normal_``, gain ``sqrt(2)``, ``||v_i|| ~ sqrt(2)``):
    what the PyTorch-default WN baseline copies into ``g`` and what datadep and the plain He init draw.
    ``gain=1`` is the reference code's draw for its proposed init (``N(0, 1/fan_in)``, ``||v_i|| ~ 1``).

    Args:
        weight: a Linear or Conv weight, filled in place.
        generator: the random stream.
        gain: the std times ``sqrt(fan_in)``; None for He-normal.

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
        raise ValueError(f"a Gaussian direction needs gain > 0 (its std is gain/sqrt(fan_in)), got {gain!r}")
    fan_in, _ = fan_in_and_fan_out(weight)
    with torch.no_grad():
        return weight.normal_(0, gain / math.sqrt(fan_in), generator=generator)


def direction_(weight: torch.Tensor, direction: str = "orthogonal", generator: torch.Generator | None = None,
               gaussian_gain: float | None = None) -> torch.Tensor:
    """Fill ``weight`` with a random direction: ``"orthogonal"`` or ``"gaussian"`` (alias ``"he"``).

    ``gaussian_gain`` is :func:`gaussian_direction_`'s ``gain`` (None: He-normal); orthogonal rows are unit.
    """
    if check_direction(direction) == "orthogonal":
        return orthogonal_direction_(weight, generator)
    return gaussian_direction_(weight, generator, gaussian_gain)


def zero_bias_(bias: torch.Tensor | None) -> torch.Tensor | None:
    """Set a bias to zero (spec §2.1: "biases to zero"); ``None`` passes through."""
    if bias is not None:
        with torch.no_grad():
            bias.zero_()
    return bias
