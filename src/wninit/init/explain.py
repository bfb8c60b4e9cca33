"""`explain(model)`: what `initialize` would do to every WN layer, printed as a table, the model untouched.

One row per layer: its name and class, the role and where it came from (`declared` with `set_role`,
`discovered` by tracing the model, or the `default` when it could not be placed), its stage, block and
`B_k`, the rule that set gamma (docs/method.md §3.7), the fans, gamma and the gain `g`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from wninit.errors import UserError
from wninit.init.gains import check_direction
from wninit.init.schemes import (PEER_INITS, LayerInit, _check_scheme, _direction_kind, _targets, initialize,
                                 layer_record, planned_roles, scheme_gain)
from wninit.weightnorm.access import wn_api, wn_dim, wn_parameters
from wninit.weightnorm.lifecycle import copy_model

__all__ = ["ExplainTable", "explain"]

_COLUMNS = ("layer", "kind", "role", "stage.block/B_k", "source", "rule", "fan_in", "fan_out", "gamma", "g", "gain")


@dataclass(frozen=True)
class ExplainTable:
    """The records `initialize` returns, printable as an aligned table."""
    rows: tuple[LayerInit, ...]
    scheme: str

    def __iter__(self):
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def by_name(self) -> dict[str, LayerInit]:
        return {r.name: r for r in self.rows}

    def __str__(self) -> str:
        body = [(r.name or "(model)", r.kind, r.role, _where(r), r.source, r.rule, str(r.fan_in), str(r.fan_out),
                 _num(r.gamma), _num(r.g), r.gain_from or "-") for r in self.rows]
        widths = [max(len(line[c]) for line in [_COLUMNS, *body]) for c in range(len(_COLUMNS))]
        lines = ["  ".join(cell.rjust(w) if c >= 6 else cell.ljust(w) for c, (cell, w) in enumerate(zip(line, widths)))
                 for line in [_COLUMNS, *body]]
        lines.insert(1, "  ".join("-" * w for w in widths))
        sources = {s: sum(r.source == s for r in self.rows) for s in ("declared", "discovered", "default")}
        lines.append(f"({len(self.rows)} layers, scheme {self.scheme!r}: " +
                     ", ".join(f"{n} {s}" for s, n in sources.items()) + ")")
        return "\n".join(lines)


def _where(r: LayerInit) -> str:
    return f"{r.stage or '-'}.{r.block}/{r.stage_blocks}" if r.stage_blocks else ""


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:.4g}"


def explain(model: nn.Module, scheme: str = "proposed", *, direction: str = "orthogonal",
            discover: bool | None = None, print_table: bool = True, example_inputs=None) -> ExplainTable:
    """Print (and return) what `initialize(model, scheme)` would set on each layer, without changing `model`.

    The records are `initialize`'s, computed without drawing a direction: each layer's role, gamma and
    gain follow from the model's structure and the layer's shape alone (docs/method.md §3.5, §3.7), so the
    model, its parameters and the global RNG stay as they were, and a VGG-sized model is explained in a
    fraction of its initialization's time (benchmarks/bench_explain.py). `g` is the value `initialize`
    stores (rounded to the parameter's dtype); under `pytorch-default` (`g = ||v||`) it is 1 where the
    orthogonal direction has orthonormal rows, and "-" where it depends on the draw. `datadep` and the
    peers need data or set weights by their own procedure, and are not explained here.

    With `example_inputs` the model is traced by running, and under `proposed` the branch ends' g is
    measured on that input (docs/method.md §3.9, §3.10): a measurement needs the drawn directions, so that
    scheme then runs on a copy of the model with a private generator, and the `gain` column says which
    layers' g was measured and which predicted.

    Examples:
        >>> table = wninit.explain(my_vocoder)      # one row per WN layer: role, source, rule, gamma, g
        >>> table.by_name()["ups.0"].gamma
    """
    if scheme == "datadep":
        raise UserError("explain does not run 'datadep' (it needs a batch of data): explain another scheme, "
                         "or call wninit.initialize(model, 'datadep', batch=x) and read its records")
    if scheme in PEER_INITS:
        raise UserError(f"explain shows the gains of the schemes that set g by a layer's role, and the peer {scheme!r} "
                        "sets no g: explain 'proposed', or read the records of wninit.initialize(model, scheme)")
    _check_scheme(scheme)
    check_direction(direction)
    if scheme == "proposed" and example_inputs is not None:
        records = initialize(copy_model(model), scheme, direction=direction, generator=torch.Generator().manual_seed(0),
                             discover=discover, example_inputs=example_inputs)
        table = ExplainTable(tuple(records), scheme)
    else:
        layers = _targets(model, scheme, None)
        orthogonal = _direction_kind(scheme, direction) == "orthogonal"
        plans, _ = planned_roles(model, layers, scheme, None, discover, example_inputs)
        table = ExplainTable(tuple(layer_record(name, layer, role, gamma, p, _gain(layer, scheme, gamma, orthogonal))
                                   for (name, layer), (role, gamma, p) in zip(layers, plans)), scheme)
    if print_table:
        print(table)
    return table


def _gain(layer: nn.Module, scheme: str, gamma: float | None, orthogonal: bool) -> float | None:
    """The g `initialize` records for `layer`, without drawing its direction (None where it depends on it)."""
    api = wn_api(layer)
    dim = 0 if api is None else wn_dim(layer, api)
    g = scheme_gain(layer, scheme, gamma or 1.0, dim)
    if api is None:
        return g
    _, g_param, v = wn_parameters(layer, api)
    if g is None:  # g = ||v_u||: 1 for every unit of an orthogonal draw with orthonormal rows, else drawn
        units = g_param.numel()
        return 1.0 if scheme == "pytorch-default" and orthogonal and units <= v.numel() // units else None
    return torch.tensor(g, dtype=g_param.dtype).item()  # the value initialize stores
