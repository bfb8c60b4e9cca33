"""A padding-aware gain: each zero-padded conv's g divided by the square root of its border coverage.

An option beyond the paper (docs/results.md): the proposed gain keeps the norm of the input at a position whose
every tap lands on the map (docs/method.md §3.1; `layer_gain`: "padding changes only the border positions").
On a small map the border is much of it: a zero-padded 3x3 conv on a 7x7 map sees 6 of its 9 taps at an edge
position and 4 at a corner, so it passes on a fraction `c` of the intended energy, its border coverage. Through
a stack of such convs the energy gathers away from the border and `c` settles at 0.901 per layer on 7x7
(`_axis_coverage`): a per-unit RMS x0.949 per layer, about 0.08 after 48 layers. Scaling g by `1/sqrt(c)`
gives back the intended energy per layer; the paper's default is unchanged unless this is called.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from wninit.errors import UserError
from wninit.structure.hooks import forward_with_hooks
from wninit.weightnorm.access import set_g_, weight_normed_layers, wn_g

__all__ = ["border_coverage", "padding_aware_gains_"]

_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def _axis_coverage(size: int, k: int, stride: int, pad: int, dilation: int) -> float:
    """The fraction of the input's energy one axis of the conv passes on, out of the `k` taps' worth.

    `A[o, i]` counts the taps of output position `o` that land on input position `i`; an energy profile
    `e` over the axis becomes `A e` (in expectation over the directions). When the map keeps its size, a
    stack of such convs drives any profile to `A`'s Perron vector (energy gathers away from the border) and
    keeps `rho(A)/k` of it per layer: the coverage that holds through depth. When the size changes (a strided
    conv, at most a few per net), the profile is taken uniform: the mean of `A`'s rows over `k`."""
    out = (size + 2 * pad - dilation * (k - 1) - 1) // stride + 1
    a = np.zeros((out, size))
    for o in range(out):
        for j in range(k):
            i = o * stride - pad + j * dilation
            if 0 <= i < size:
                a[o, i] += 1
    if out == size:
        return float(max(abs(np.linalg.eigvals(a)))) / k
    return float(a.sum()) / (out * k)


def border_coverage(layer: nn.Module, in_size) -> float:
    """The fraction of its input's energy `layer` passes on from a map of spatial size `in_size`, relative to a
    map without border: the product of its axes' coverages (the tap-count operator of the map is the Kronecker
    product of the axes', and so are its Perron value and its row sums). 1 for no padding."""
    if not isinstance(layer, _CONVS):
        raise UserError(f"border_coverage takes a Conv1d/2d/3d, got {type(layer).__name__}; a Linear has no border")
    if layer.padding_mode != "zeros" or isinstance(layer.padding, str):
        raise UserError(f"{type(layer).__name__} with padding {layer.padding!r} ({layer.padding_mode}) is not handled: "
                        "the padding-aware gain is defined for numeric zero padding")
    return math.prod(_axis_coverage(n, k, s, p, d) for n, k, s, p, d in
                     zip(in_size, layer.kernel_size, layer.stride, layer.padding, layer.dilation))


def padding_aware_gains_(model: nn.Module, example: torch.Tensor) -> list[tuple[str, float]]:
    """Divide the g of every weight-normalized, zero-padded conv of `model` by sqrt(its border coverage) on the
    maps `example` (a batch of the model's inputs) gives it, in place; returns `(name, coverage)` per conv.

    Call it after [`wninit.initialize`][wninit.init.schemes.initialize]. Only the input's spatial size is read (one forward pass without
    gradients). A weight-normalized layer that is no Conv1d/2d/3d is left as it is and is not listed.
    """
    convs = [(name, m) for name, m in weight_normed_layers(model) if isinstance(m, _CONVS)]
    sizes = {}

    def hook(name):
        def record(module, inputs, output):
            sizes[name] = tuple(inputs[0].shape[2:])
        return record
    forward_with_hooks(model, example, [(m, hook(name)) for name, m in convs])
    out = []
    with torch.no_grad():
        for name, m in convs:
            if name not in sizes:
                raise UserError(f"conv {name!r} was not reached by a forward pass of the example; pass an input "
                                "that runs through every layer")
            c = border_coverage(m, sizes[name])
            set_g_(m, wn_g(m) / math.sqrt(c))
            out.append((name, c))
    return out
