"""Measured where the theory stops: a residual branch's end gets its g from the energies of one real forward pass
(docs/method.md §3.10).

The energy pass predicts what reaches a branch's last layer from the ops between the stream and that layer; a
normalization, attention, a gate, pooling, a concatenation inside the branch, or an activation after the sum
make that prediction an assumption (the explain table lists them as "outside the theory"). Given an example
input, the proposed rule's target is then made to hold exactly on that input: at every residual sum the sum's
energy per position is `1 + s/B_k` times its stream's (`s` the mean square of the model's own branch scale,
1 without one; the cross term of the stream and the branch, 0 only in expectation, included), by one factor
`c` on the branch end's `g`. The sums are measured in data-flow order
in one forward pass (`wninit.structure.record.record`): each sum is corrected as it is computed, so every
later sum sees the already-corrected stream. A branch whose own scale is 0 (ReZero, SkipInit) adds nothing by
its authors' choice and keeps its predicted g.

A branch that also feeds another path (WaveNet's and VITS's skip outputs) hands its uncorrected output to that
path before its sum is corrected; where that path reaches a later stream (VITS's flows) the one pass is
repeated, each pass's factors multiplying the last, until every factor is within `TOLERANCE` of 1 (at most
`MAX_PASSES` passes; docs/method.md §3.10).
"""
from __future__ import annotations

import math

import torch
import torch.fx as fx
from torch import nn

from wninit.structure.graph import CATS as _CATS
from wninit.structure.graph import Graph
from wninit.structure.trace import LEAK, Structure

__all__ = ["measure_branch_ends", "MAX_PASSES", "TOLERANCE"]

MAX_PASSES, TOLERANCE = 4, 1e-6


def _scale_between(G: Graph, end: fx.Node, operand: fx.Node) -> float:
    """The product of the model's own scales (`x * p`) from the branch end's output to the sum's operand."""
    s, n = 1.0, operand
    while n is not end:
        p = G.param_scale(n)  # a Python-number scale is the layer's to undo (its follow factor): only p counts
        s *= p if p is not None else 1.0
        ins = G.tensor_inputs(n)
        if len(ins) != 1:
            return s
        n = ins[0]
    return s


def measure_branch_ends(model: nn.Module, structure: Structure, example_inputs, layers: list[str]) -> dict[str, float]:
    """Rescale `g` of each branch-end layer in `layers` so that its branch adds `s/B_k` of its stream's
    energy on `example_inputs`; returns `{layer: c}`, the factor each `g` was multiplied by.

    Layers whose branch adds nothing (a zero scale, a zero output) keep their g and are left out of the result.
    One recorded pass, repeated only where a measured branch also feeds another path (see the module docstring).
    """
    factors = _one_pass(model, structure, example_inputs, layers)
    leaks = {s.branch_end for s in structure.sums if LEAK in s.approximations} & set(factors)
    for _ in range(MAX_PASSES - 1):
        if not leaks or all(abs(c - 1.0) <= TOLERANCE for c in factors.values()):
            break
        more = _one_pass(model, structure, example_inputs, layers)
        factors = {k: c * more.get(k, 1.0) for k, c in factors.items()}
    return factors


def _one_pass(model: nn.Module, structure: Structure, example_inputs, layers: list[str]) -> dict[str, float]:
    from wninit.structure.record import record
    from wninit.weightnorm.access import wn_g

    G = Graph(model, structure.graph)
    nodes = {n.name: n for n in G.nodes}
    wanted = {}  # sum node name -> (layer, skip node name, operand node name, index of the operand, s, B_k)
    for layer in layers:
        sum_node = nodes[structure.sum_nodes[layer]]
        end = nodes[structure.layer_nodes[layer]]
        a, b = G.operands(sum_node)
        operand, skip = (a, b) if _computed_from(end, a) else (b, a)
        role = structure.roles[layer]
        wanted[sum_node.name] = (layer, skip.name, operand.name, 0 if operand is a else 1,
                                 _scale_between(G, end, operand), role.stage_blocks)
    skips = {w[1] for w in wanted.values()}
    tracked = skips | {w[2] for w in wanted.values()}
    energy: dict[str, float] = {}
    operands: dict[str, torch.Tensor] = {}
    factors: dict[str, float] = {}

    def on_node(node: fx.Node, t: torch.Tensor):
        if node.name in wanted:
            _correct(node, t)
        if node.name in tracked:  # after its own correction, before any in-place op that may follow
            energy[node.name] = float(t.detach().double().square().sum())
            # a copy: an in-place sum (`branch += skip`, transformers' ResNet) writes into the operand itself
            operands[node.name] = t.detach().clone()
        return None

    def _correct(node: fx.Node, t: torch.Tensor) -> None:
        layer, skip, operand, index, s, blocks = wanted[node.name]
        skip_e, op_e = energy.get(skip), energy.get(operand)
        if not s or not op_e or skip_e is None:
            return
        cross = 0.0 if node.target in _CATS else float((operands[skip].double() * operands[operand].double()).sum())
        c = _factor(skip_e, op_e, cross, s / blocks)
        factors[layer] = c
        with torch.no_grad():
            wn_g(model.get_submodule(layer)).mul_(c)
            _rescale_operand(t, node, index, c, operands[operand])

    record(model, example_inputs, on_node=on_node)
    return factors


def _factor(skip_e: float, op_e: float, cross: float, share: float) -> float:
    """The `c > 0` with `||skip + c op||^2 = (1 + share) ||skip||^2`: the sum grows by the branch's share
    of its stream's energy on this input, cross term included (docs/method.md §3.10)."""
    return (-cross + math.sqrt(cross * cross + op_e * skip_e * share)) / op_e


def _rescale_operand(out: torch.Tensor, node: fx.Node, index: int, c: float, operand: torch.Tensor) -> None:
    """`out` (the sum, in place) as if its operand had been `c` times larger."""
    if node.target in (torch.cat, torch.concat):
        dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
        start = 0 if index == 0 else out.shape[dim] - operand.shape[dim]
        out.narrow(dim, start, operand.shape[dim]).mul_(c)
    else:
        out.add_(operand, alpha=c - 1.0)


def _computed_from(end: fx.Node, n: fx.Node) -> bool:
    """Whether node `n` is `end` or computed from it (the branch operand, not the skip)."""
    stack, seen = [n], set()
    while stack:
        m = stack.pop()
        if m is end:
            return True
        if m in seen:
            continue
        seen.add(m)
        stack.extend(m.all_input_nodes)
    return False
