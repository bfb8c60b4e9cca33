"""Per-stage forward and backward norm ratios of a zoo model on one input, read off a recording of its forward
pass (wninit.structure.record): what docs/zoo.md tabulates and the zoo tests assert.

A stage is a chain of residual sums (docs/method.md §3.4); its ratio compares the last sum's output with the
stage's input stream, their squared norms per position (elements over channels where a stride-2 projection
that starts the stage changes the positions: it keeps the norm summed
over channels at each kept position, §3.4). Its target is the energy pass's prediction (``(1 + s/B_k)^B_k`` for ``B_k`` branches of scale ``s``).
Backward: ``||dL/d stream_in|| / ||dL/d last sum||`` for a seeded Gaussian cotangent at the output; and the
stage's own backward, ``||J^T u|| / ||u||`` for ``J`` the Jacobian of the last sum in the stage's input stream and
``u`` a seeded Gaussian over every position of the last sum (per position as above): what the stage alone does
to a gradient, whatever the loss reads and whatever else (a skip output) the stream feeds.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from wninit.structure.record import record
from wninit.structure.trace import Structure


@dataclass(frozen=True)
class StageRatio:
    stage: int
    blocks: int
    forward: float  # per-position norm ratio over the stage
    target: float  # predicted by the energy pass
    backward: float
    backward_stage: float  # the stage's own: an iid cotangent at its last sum, back to its input stream

    @property
    def relative(self) -> float:
        return self.forward / self.target


def stage_ratios(model: torch.nn.Module, structure: Structure, x, seed: int = 0,
                 stage_backward: bool = False) -> list[StageRatio]:
    """One :class:`StageRatio` per stage of ``structure`` (discovered by running on ``x``); each stage's own
    backward (one more backward pass per stage) only when ``stage_backward``, else NaN."""
    stages: dict[int, list] = {}
    for s in structure.sums:
        stages.setdefault(s.stage, []).append(s)
    ends = {k: (sums[0].stream, sums[-1].node) for k, sums in stages.items()}
    keep = {n for pair in ends.values() for n in pair}
    rec = record(model, x, keep=keep, grad=True)
    outs = [t for t in _tensors(rec.output) if t.requires_grad]
    grads = {}
    wanted = [n for n in keep if rec.kept[n].requires_grad]
    if outs and wanted:
        gen = torch.Generator().manual_seed(seed)
        cot = [torch.randn(o.shape, generator=gen, dtype=o.dtype) for o in outs]
        got = torch.autograd.grad(outs, [rec.kept[n] for n in wanted], cot, allow_unused=True, retain_graph=True)
        grads = {n: g for n, g in zip(wanted, got) if g is not None}
    rows = []
    for k, (first, last) in ends.items():
        axis = -1 if isinstance(model.get_submodule(stages[k][0].branch_end), torch.nn.Linear) else 1
        p_in, p_out = _positions(rec.values[first], axis), _positions(rec.values[last], axis)
        if rec.values[first].numel() == rec.values[last].numel():  # one stream in two layouts (NHWC, tokens)
            p_in = p_out = 1
        e_in, e_out = _sq(rec.values[first]) / p_in, _sq(rec.values[last]) / p_out
        target = math.sqrt(structure.energy[last] / structure.energy[first])
        bwd = math.sqrt(_sq(grads[first]) / p_in / (_sq(grads[last]) / p_out)) \
            if first in grads and last in grads and _sq(grads[last]) > 0 else float("nan")
        fwd = math.sqrt(e_out / e_in) if e_in > 0 else float("nan")
        rows.append(StageRatio(k, stages[k][0].stage_blocks, fwd, target, bwd,
                               _stage_backward(rec, first, last, p_in, p_out, seed) if stage_backward
                               else float("nan")))
    return rows


def _stage_backward(rec, first: str, last: str, p_in: int, p_out: int, seed: int) -> float:
    a, b = rec.kept[first], rec.kept[last]
    if not (a.requires_grad and b.requires_grad):
        return float("nan")
    u = torch.randn(b.shape, generator=torch.Generator().manual_seed(seed), dtype=b.dtype)
    g = torch.autograd.grad(b, a, u, retain_graph=True, allow_unused=True)[0]
    return float("nan") if g is None else math.sqrt(_sq(g) / p_in / (_sq(u) / p_out))


def _positions(t: torch.Tensor, axis: int) -> int:
    """Positions of the whole batch: its elements over its channels (``axis``)."""
    return max(1, t.numel() // t.shape[axis]) if t.dim() > 1 else 1


def _sq(t: torch.Tensor) -> float:
    return float(t.detach().double().square().sum())


def _tensors(out) -> list[torch.Tensor]:
    from wninit.structure.record import _flat_tensors

    return _flat_tensors(out)
