"""Per-layer forward and backward norm ratios of any `nn.Module` at initialization (docs/method.md §3.1-§3.4, Fig. 1).

A measuring point `h_i` is the output of a module: the ones the model marks with
[`wninit.structure.roles.mark_probe`][] (each hidden ReLU, each residual block of this package's models), or the
modules (or their names) passed as `points`. A point module called several times (a shared `ReLU`)
gives one row per call, in call order. Per point and per sample (norms over every non-batch dim):

- forward ratio `||h_i|| / ||x||` (docs/method.md §3.1: ~1 per layer for the proposed init);
- backward ratio `||dL/dh_i|| / ||dL/dh_L||`, `h_L` the last point, for a seeded random Gaussian
  cotangent at the model output: there is no loss, as in the paper's Figure 1 (docs/method.md §7.1);
- RMS forward ratio `(||h_i||/sqrt(numel_i)) / (||x||/sqrt(numel_x))`, per element;
- per-position forward ratio `(||h_i||/sqrt(positions_i)) / (||x||/sqrt(positions_x))` with
  `positions` = numel / channels. This is what the proposed gains preserve across a stride-2,
  width-doubling stage: `g = sqrt(fan_in/fan_out)` keeps the norm summed over channels at each kept
  position (docs/method.md §2.1 [DERIV], §3.4), so per element it drops by `sqrt(C_in/C_out)` there.

The model runs in the mode it is in (`train()`/`eval()`): a BatchNorm net in train mode mixes samples.
"""
from __future__ import annotations

import csv
import math
from dataclasses import astuple, dataclass, fields
from pathlib import Path
from typing import Iterable

import torch
from torch import nn

from wninit.errors import UserError, check_model
from wninit.structure.roles import probe_points

__all__ = ["PropagationRow", "PropagationTable", "propagation"]


@dataclass(frozen=True)
class PropagationRow:
    """One measuring point: means and stds are over the samples of the batch."""
    index: int  # 1-based, in call order
    name: str
    shape: str  # per-sample shape of h_i, e.g. "16x32x32"
    forward_mean: float
    forward_std: float
    backward_mean: float
    backward_std: float
    forward_rms_mean: float
    forward_position_mean: float
    backward_position_mean: float = float("nan")  # per position: (||dL/dh_i||/sqrt(pos_i)) / (||dL/dh_L||/sqrt(pos_L))


@dataclass(frozen=True)
class PropagationTable:
    """The rows of [`propagation`][wninit.diagnostics.norm_propagation.propagation], printable as an aligned table and writable as CSV."""
    rows: tuple[PropagationRow, ...]
    samples: int

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self):
        return iter(self.rows)

    def column(self, name: str) -> list:
        """One column as a list, e.g. `table.column("forward_mean")`."""
        if name not in self.columns():
            raise UserError(f"unknown column {name!r}: choose one of {', '.join(self.columns())}")
        return [getattr(r, name) for r in self.rows]

    @staticmethod
    def columns() -> tuple[str, ...]:
        return tuple(f.name for f in fields(PropagationRow))

    def to_csv(self, path: str | Path) -> Path:
        path = Path(path)
        with path.open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(self.columns())
            writer.writerows(astuple(r) for r in self.rows)
        return path

    def __str__(self) -> str:
        return self.render()

    def render(self, all_normalizations: bool = False) -> str:
        """The table: the ratios per position (the paper's, docs/diagnostics.md), or with `all_normalizations`
        also per sample (mean and std over the samples) and per element."""
        head = ("i", "point", "shape", "forward", "backward")
        values = [(r.forward_position_mean, r.backward_position_mean) for r in self.rows]
        if all_normalizations:
            head += ("fwd/sample", "fwd std", "bwd/sample", "bwd std", "fwd/element")
            values = [v + (r.forward_mean, r.forward_std, r.backward_mean, r.backward_std, r.forward_rms_mean)
                      for v, r in zip(values, self.rows)]
        body = [(str(r.index), r.name, r.shape) + tuple(_fmt(x) for x in v) for r, v in zip(self.rows, values)]
        widths = [max(len(line[c]) for line in [head, *body]) for c in range(len(head))]
        lines = ["  ".join(cell.ljust(w) if c in (1, 2) else cell.rjust(w) for c, (cell, w) in enumerate(zip(line, widths)))
                 for line in [head, *body]]
        lines.insert(1, "  ".join("-" * w for w in widths))
        lines.append(f"({self.samples} samples; forward ||h_i||/||x||, backward ||dL/dh_i||/||dL/dh_L||,\n"
                     " dL the Gaussian cotangent at the output; every norm per position:\n"
                     " over the channels, divided by sqrt(positions))")
        return "\n".join(lines)


def _fmt(v: float) -> str:
    return f"{v:.4g}"


def _resolve_points(model: nn.Module, points) -> list[tuple[str, nn.Module]]:
    if points is None:
        found = probe_points(model)
        if not found:
            raise UserError(f"{type(model).__name__} marks no measuring points: pass points=[module names, e.g. its "
                            "ReLUs] or mark them with wninit.structure.roles.mark_probe")
        return found
    by_name = dict(model.named_modules())
    name_of = {id(m): n for n, m in model.named_modules()}
    resolved = []
    for p in ([points] if isinstance(points, (str, nn.Module)) else list(points)):
        if isinstance(p, str):
            if p not in by_name:
                raise UserError(f"the model has no module named {p!r}: pass names as model.named_modules() lists them")
            resolved.append((p or "model", by_name[p]))
        elif isinstance(p, nn.Module):
            if id(p) not in name_of:
                raise UserError(f"a {type(p).__name__} passed in points is not part of the model: pass the model's own modules")
            resolved.append((name_of[id(p)] or "model", p))
        else:
            raise UserError(f"points must be module names or modules, got a {type(p).__name__}")
    if not resolved:
        raise UserError("points is empty: pass at least one module name, or None for the model's marked points")
    return resolved


def _leaf_input(inputs: torch.Tensor) -> torch.Tensor:
    """A copy of the batch that requires grad, so every point downstream of it has a graph, even with frozen
    parameters."""
    x = inputs.detach().clone()
    if x.is_floating_point():
        x.requires_grad_(True)
    return x


def _rejected(model: nn.Module, inputs: torch.Tensor, exc: Exception) -> UserError:
    return UserError(f"the model rejected inputs of shape {tuple(inputs.shape)} ({str(exc).splitlines()[0][:160]}); "
                     f"{_expected_input(model)}")


def _expected_input(model: nn.Module) -> str:
    """What the first Linear/Conv layer expects, for the shape error message."""
    for m in model.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            return f"its first layer is a {type(m).__name__} expecting (N, {m.in_channels}, ...) inputs"
        if isinstance(m, nn.Linear):
            return f"its first layer is a Linear expecting {m.in_features} features per sample"
    return "check the shape the model expects"


def _per_sample_norm(t: torch.Tensor) -> torch.Tensor:
    # float64 before the norm: a diverging init (pytorch-default at depth 1000) overflows a float32 sum of squares.
    return t.detach().flatten(1).double().norm(dim=1)


def _positions(per_sample_shape: tuple[int, ...]) -> int:
    return math.prod(per_sample_shape[1:]) if len(per_sample_shape) > 1 else 1


def _positions_of(h: torch.Tensor, channel_axis: int) -> int:
    """Positions of one sample: its elements over its channels (the channel axis of the full tensor)."""
    return max(1, h[0].numel() // h.shape[channel_axis]) if h.dim() > 1 else 1


def _mean_std(t: torch.Tensor) -> tuple[float, float]:
    # population std (ddof 0), as np.std in the paper's notebook
    return float(t.mean()), float(t.std(unbiased=False)) if t.numel() > 1 else 0.0


def propagation(model: nn.Module, inputs: torch.Tensor, *, points: Iterable | None = None,
                seed: int = 0) -> PropagationTable:
    """Forward `||h_i||/||x||` and backward `||dL/dh_i||/||dL/dh_L||` ratios at every measuring point.

    Args:
        model: any module returning one tensor.
        inputs: a batch `(N, ...)`; each of the N samples gives one ratio per point.
        points: module names or modules to measure; default: the ones marked by `wninit.structure.roles.mark_probe`.
        seed: seeds the Gaussian cotangent drawn at the output (the backward signal, docs/method.md §7.1).

    Examples:
        >>> model = wninit.models.MLP(784, 256, depth=20, num_classes=10); wninit.initialize(model)
        >>> print(propagation(model, torch.randn(64, 1, 28, 28)))
    """
    check_model(model, "wninit.diagnostics.propagation")
    if not isinstance(inputs, torch.Tensor) or inputs.dim() < 2 or inputs.shape[0] < 1 or inputs[0].numel() == 0:
        got = tuple(inputs.shape) if isinstance(inputs, torch.Tensor) else type(inputs).__name__
        raise UserError(f"inputs must be a non-empty batch tensor of shape (N, ...), got {got}")
    if points is None and not probe_points(model):
        return _propagation_discovered(model, inputs, seed)
    named = _resolve_points(model, points)
    records: list[tuple[str, torch.Tensor]] = []
    calls: dict[str, int] = {}

    def record(name):
        def hook(module, args, out):
            if not isinstance(out, torch.Tensor) or out.dim() < 1 or out.shape[0] != inputs.shape[0]:
                raise UserError(f"measuring point {name!r} returns {type(out).__name__} {tuple(getattr(out, 'shape', ()))}, "
                                "not a (N, ...) tensor: measure a module that outputs one tensor per sample")
            calls[name] = calls.get(name, 0) + 1
            records.append((name if calls[name] == 1 else f"{name}#{calls[name]}", out))
        return hook

    x = _leaf_input(inputs)
    handles = [m.register_forward_hook(record(n)) for n, m in named]
    try:
        with torch.enable_grad():
            out = model(x)
    except RuntimeError as exc:
        raise _rejected(model, inputs, exc) from None
    finally:
        for h in handles:
            h.remove()
    if not isinstance(out, torch.Tensor):
        raise UserError(f"the model returns a {type(out).__name__}: propagation needs a model that returns one tensor")
    if not records:
        raise UserError("none of the measuring points ran in the forward pass: pass points the model calls")
    return _table(x, out, records, seed, _input_positions(model, x))


def _propagation_discovered(model: nn.Module, inputs: torch.Tensor, seed: int) -> PropagationTable:
    """[`propagation`][wninit.diagnostics.norm_propagation.propagation] at the points structure discovery finds (`wninit.diagnostics.points`); a model
    torch.fx cannot trace is discovered by running it on `inputs`."""
    from wninit.structure.trace import TraceFailure
    from wninit.diagnostics.points import graph_points, run_recording

    try:
        gm, points = graph_points(model)
    except TraceFailure:  # the batch is an example input: discover by running (docs/method.md §3.9)
        gm, points = graph_points(model, example_inputs=inputs)
    x = _leaf_input(inputs)
    try:
        with torch.enable_grad():
            out, seen = run_recording(gm, points, x, model)
    except RuntimeError as exc:
        raise _rejected(model, inputs, exc) from None
    if isinstance(out, (tuple, list)):  # follow the first tensor the model returns
        out = next((o for o in out if isinstance(o, torch.Tensor)), None)
    if not isinstance(out, torch.Tensor):
        raise UserError("the model returns no tensor: propagation needs a model whose output is a tensor")
    records = [(p.name, seen[p.node], p.channel_axis) for p in points if p.node in seen]
    if not records:
        raise UserError(f"structure discovery found no weight-normed layer or residual sum in {type(model).__name__} "
                        "to measure: pass points=[module names]")
    return _table(x, out, records, seed, _input_positions(model, x))


def _input_positions(model: nn.Module, x: torch.Tensor) -> int:
    """Positions of one input sample, as the model's first layer reads it: a Linear reads all of a sample
    (an MLP's flattened image is one position of 784 features), a Conv reads `in_channels` per position."""
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d,
                          nn.ConvTranspose3d)):
            per_position = m.in_features if isinstance(m, nn.Linear) else m.in_channels
            return max(1, x[0].numel() // per_position)
    return _positions(tuple(x.shape[1:]))


def _table(x: torch.Tensor, out: torch.Tensor, records: list[tuple], seed: int, x_positions: int) -> PropagationTable:
    x_norm = _per_sample_norm(x)
    x_shape = tuple(x.shape[1:])
    cotangent = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    records = [r if len(r) == 3 else (r[0], r[1], 1) for r in records]  # (name, tensor, channel axis)
    wanted = [i for i, (_, h, _) in enumerate(records) if h.requires_grad]
    grads: list[torch.Tensor | None] = [None] * len(records)
    if wanted and out.requires_grad:
        # Gradients w.r.t. the points only: the engine skips the parameters' gradients (and leaves .grad alone).
        got = torch.autograd.grad(out, [records[i][1] for i in wanted], cotangent.to(out.device, out.dtype),
                                  allow_unused=True)
        for i, g in zip(wanted, got):
            grads[i] = None if g is None else _per_sample_norm(g)
    last = grads[-1]
    nan = torch.full_like(x_norm, float("nan"))
    last_positions = _positions_of(records[-1][1], records[-1][2])
    rows = []
    for i, (name, h, axis) in enumerate(records):
        shape = tuple(h.shape[1:])
        fwd = _per_sample_norm(h) / x_norm
        rms = fwd * math.sqrt(math.prod(x_shape) / max(1, math.prod(shape)))
        pos = fwd * math.sqrt(x_positions / _positions_of(h, axis))
        bwd = grads[i] / last if grads[i] is not None and last is not None else nan
        bwd_pos = bwd * math.sqrt(last_positions / _positions_of(h, axis))
        rows.append(PropagationRow(i + 1, name, "x".join(map(str, shape)) or "1", *_mean_std(fwd), *_mean_std(bwd),
                                   float(rms.mean()), float(pos.mean()), float(bwd_pos.mean())))
    return PropagationTable(tuple(rows), int(x.shape[0]))
