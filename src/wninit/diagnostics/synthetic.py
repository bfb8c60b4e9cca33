"""The paper's Figure 1 (docs/method.md §7.1): norm ratios through a synthetic WN ReLU net and a WN ResNet.

Re-implements the notebook `synthetic_data_experiment.ipynb` (numpy) in torch float64, so that it runs
on the threads torch is given (`torch.set_num_threads`), with three deliberate changes:
a seed (the notebook sets none), the correct ReLU mask in the ResNet backward pass (docs/method.md §3.6 item 13),
and the orthogonal factor of a Gaussian matrix taken from its QR decomposition instead of its SVD: both give an
orthogonal factor distributed uniformly (Haar), as torch's and wninit's own orthogonal init draw it, and the QR
costs a fifth of the SVD, which makes the several network draws the claims are judged on affordable
(docs/method.md §7.1).

- Feed-forward: `x ~ N(0, I_500)`, `L = 20` layers `h = ReLU(W h)`, no biases, the width of each
  layer drawn as `randint(m0-50, m0+50)`; `W` has unit-norm rows times a gain.
- ResNet: `B = 40` blocks `h^b = h^{b-1} + W1 ReLU(W0 h^{b-1})`, `W0: m0 x 500`, `W1: 500 x m0`.
- Backward: a Gaussian `delta` at the top (no loss) propagated down, mean and std over samples.
"""
from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from wninit.errors import UserError

__all__ = ["INITS", "PANELS", "Figure1Row", "figure1", "rows_to_csv"]

INITS = ("He (g=1)", "Proposed (orthogonal)", "Proposed (He)")
PANELS = ("ff_forward", "ff_backward", "resnet_forward", "resnet_backward")
_NETS = {"ff": 0, "resnet": 1}


class Figure1Row(NamedTuple):
    panel: str  # one of PANELS
    init: str  # one of INITS
    width: int  # m0
    index: int  # layer i (feed-forward) or block b (ResNet), 1-based
    mean: float  # over samples
    std: float  # population std over samples, as np.std in the notebook
    draw: int = 0  # the network draw: drawn from seed + draw


def _gaussian(gen: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.randn(shape, generator=gen, dtype=torch.float64)


def _unit_rows(gen: torch.Generator, m: int, n: int, init: str) -> torch.Tensor:
    """An `m x n` matrix with unit-norm rows: Gaussian, or the orthogonal factor of a Gaussian matrix."""
    a = _gaussian(gen, m, n)
    if init == "Proposed (orthogonal)":
        # orthonormal rows if m < n, else orthonormal columns, as the notebook's V[:m] or U[:, :n] of an SVD. The
        # signs of R's diagonal moved into Q make Q uniformly distributed (Haar); a plain QR would bias them.
        q, r = torch.linalg.qr(a if m >= n else a.T)
        q = q * torch.sign(torch.diagonal(r))
        a = q if m >= n else q.T
    return a / a.norm(dim=1, keepdim=True)


def _stats(num: torch.Tensor, den: torch.Tensor) -> tuple[float, float]:
    r = num.norm(dim=1) / den.norm(dim=1)
    return float(r.mean()), float(r.std(unbiased=False))  # population std, as np.std


def _generator(*key: int) -> torch.Generator:
    # one independent stream per (seed, net, init, width): numpy's SeedSequence mixes the key into a seed
    return torch.Generator().manual_seed(int(np.random.SeedSequence(list(key)).generate_state(1, np.uint64)[0] >> 1))


def _feedforward(gen, x, init, m0, layers):
    """Forward `||h^i||/||x||` for i = 1..L and backward `||delta_i||/||delta_L||` for i = 1..L."""
    n_prev, h, weights, forward = x.shape[1], x, [], []
    for _ in range(layers):
        m = int(torch.randint(m0 - 50, m0 + 50, (1,), generator=gen))  # as numpy's randint: [m0-50, m0+49]
        # docs/method.md §3.1: proposed g = sqrt(2 n_in / n_out); "He (g=1)" keeps the unit rows
        gain = 1.0 if init == "He (g=1)" else math.sqrt(2.0 * n_prev / m)
        w = gain * _unit_rows(gen, m, n_prev, init)
        h = torch.relu(h @ w.T)
        weights.append((w, h > 0))
        forward.append(_stats(h, x))
        n_prev = m
    # docs/method.md §7.1: delta ~ N(0, I) at the top pre-activation, delta_i = 1[h_i > 0] * W_{i+1}^T delta_{i+1}
    delta_top = _gaussian(gen, x.shape[0], n_prev)
    delta, backward = delta_top, [None] * layers
    backward[-1] = _stats(delta, delta_top)
    for i in range(layers - 2, -1, -1):
        w_next, _ = weights[i + 1]
        delta = weights[i][1] * (delta @ w_next)
        backward[i] = _stats(delta, delta_top)
    return forward, backward


def _resnet(gen, x, init, m0, blocks):
    """Forward `||h^b||/||x||` for b = 1..B and backward `||dh^b||/||dh^B||` for b = 0..B."""
    n = x.shape[1]
    scale0 = 1.0 if init == "He (g=1)" else math.sqrt(2.0 * n / m0)  # gamma = 2 (ReLU follows)
    scale1 = 1.0 if init == "He (g=1)" else math.sqrt(m0 / n) / math.sqrt(blocks)  # gamma = 1/B (docs/method.md §3.4)
    h, saved, forward = x, [], []
    for _ in range(blocks):
        w0 = scale0 * _unit_rows(gen, m0, n, init)
        w1 = scale1 * _unit_rows(gen, n, m0, init)
        a = h @ w0.T
        h = h + torch.relu(a) @ w1.T
        saved.append((w0, w1, a > 0))
        forward.append(_stats(h, x))
    grad_top = _gaussian(gen, *x.shape)
    grad, backward = grad_top, [None] * (blocks + 1)
    backward[blocks] = _stats(grad, grad_top)
    for b in range(blocks, 0, -1):
        w0, w1, mask = saved[b - 1]
        # NOTE: the notebook masks with (h^{b-1} > 0) after W0^T; the derivative of ReLU(W0 h) needs the mask
        # of the hidden pre-activation W0 h^{b-1}, applied between W1^T and W0^T (docs/method.md §3.6 item 13).
        grad = grad + (mask * (grad @ w1)) @ w0
        backward[b - 1] = _stats(grad, grad_top)
    return forward, backward


def figure1(seed: int = 0, widths: tuple[int, ...] = (200, 1000), n_in: int = 500, layers: int = 20,
            blocks: int = 40, samples: int = 1000, inits: tuple[str, ...] = INITS,
            nets: tuple[str, ...] = ("ff", "resnet"), draws: int = 1) -> list[Figure1Row]:
    """The rows of the paper's Figure 1 (docs/method.md §7.1): every panel, init and width, one row per plotted index,
    for each of `draws` networks.

    Indices are the plotted ones: feed-forward forward 1..L, backward 2..L-1; ResNet forward 1..B,
    backward 2..B-1. Draw d is the figure of seed `seed + d` (the paper's figure is one draw). Each (net, init,
    width) draws from its own stream of the seed, and every init of a net sees the same inputs
    `x ~ N(0, I_n_in)`. `inits` and `nets` (`"ff"`, `"resnet"`) select a part of the figure; each part is the same
    whatever else is computed.

    Examples:
        >>> rows = figure1(samples=200)
        >>> [r.mean for r in rows if r.panel == "resnet_forward" and r.index == 40][:1]
    """
    for name, value in (("n_in", n_in), ("layers", layers), ("blocks", blocks), ("samples", samples), ("draws", draws)):
        if not isinstance(value, int) or value < (3 if name in ("layers", "blocks") else 1):
            raise UserError(f"{name} must be an integer >= {3 if name in ('layers', 'blocks') else 1}, got {value!r}")
    if not widths or any(not isinstance(w, int) or w <= 50 for w in widths):
        raise UserError(f"widths must be integers above 50 (each layer's width is drawn in [m0-50, m0+49]), got {widths!r}")
    unknown = [i for i in inits if i not in INITS]
    if unknown:
        raise UserError(f"unknown init {unknown[0]!r}: choose among {', '.join(INITS)}")
    if not nets or any(n not in _NETS for n in nets):
        raise UserError(f"nets must name 'ff' and/or 'resnet', got {nets!r}")
    return [row for d in range(draws) for row in _one_draw(seed + d, d, widths, n_in, layers, blocks, samples, inits, nets)]


def _one_draw(seed, draw, widths, n_in, layers, blocks, samples, inits, nets) -> list[Figure1Row]:
    rows: list[Figure1Row] = []
    for net, depth in (("ff", layers), ("resnet", blocks)):
        if net not in nets:
            continue
        x = _gaussian(_generator(seed, _NETS[net]), samples, n_in)
        for k, init in enumerate(INITS):
            if init not in inits:
                continue
            for m0 in widths:
                gen = _generator(seed, _NETS[net], k, m0)
                run = _feedforward if net == "ff" else _resnet
                forward, backward = run(gen, x, init, m0, depth)
                rows += [Figure1Row(f"{net}_forward", init, m0, i, *s, draw) for i, s in enumerate(forward, 1)]
                # backward lists index 1..L (ff) or 0..B (resnet); both panels plot 2..depth-1
                offset = 1 if net == "ff" else 0
                rows += [Figure1Row(f"{net}_backward", init, m0, i, *backward[i - offset], draw) for i in range(2, depth)]
    return rows


def rows_to_csv(rows: list[Figure1Row], path: str | Path) -> Path:
    """Write the rows with the header `panel,init,width,index,mean,std,draw`."""
    path = Path(path)
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(Figure1Row._fields)
        writer.writerows(rows)
    return path
