"""`explain(model)`: what `initialize` would do to every WN layer, printed as a table, the model untouched.

One row per layer: its name and class, the role and where it came from (`declared` with `set_role`,
`discovered` by tracing the model, or the `default` when it could not be placed), its stage, block and
`B_k`, the rule that set gamma (docs/method.md §3.7), the fans, the correction `c` of a transposed layer's
fan-in (docs/method.md §3.8), gamma and the gain `g`: under the proposed scheme every row's
`g = sqrt(gamma * c * fan_in / fan_out)`. The table fits 100 columns (short codes, explained below it);
`wide=True` spells everything out.
"""
from __future__ import annotations

import textwrap
from dataclasses import dataclass

import torch
from torch import nn

from wninit.errors import UserError, check_model
from wninit.init.gains import check_direction, effective_fan_in, layer_fans
from wninit.init.schemes import (PEER_INITS, LayerInit, _check_scheme, _direction_kind, _targets, initialize,
                                 layer_record, planned_roles, scheme_gain)
from wninit.weightnorm.access import wn_api, wn_dim, wn_parameters
from wninit.weightnorm.lifecycle import copy_model

__all__ = ["ExplainTable", "explain"]

WIDTH = 100  # the default table fits a terminal of this many columns
_COLUMNS = ("layer", "kind", "role", "stage.block/B_k", "source", "rule", "fan_in", "fan_out", "c", "gamma", "g", "gain")
_NARROW = {"stage.block/B_k": "k.b/B", "source": "src"}
_SOURCES = {"declared": "decl", "discovered": "disc", "default": "dflt"}
_NUMERIC = 6  # columns from fan_in on are right-aligned
_GAINS = {"predicted": "pred", "measured": "meas"}


@dataclass(frozen=True)
class ExplainTable:
    """The records `initialize` returns, printable as an aligned table (`str(table)` fits 100 columns,
    `table.render(wide=True)` spells out every rule). `corrections[i]` is row `i`'s `c`, its effective fan-in
    over its fan_in (1 but for transposed layers)."""
    rows: tuple[LayerInit, ...]
    scheme: str
    corrections: tuple[float, ...] = ()

    def __iter__(self):
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def by_name(self) -> dict[str, LayerInit]:
        return {r.name: r for r in self.rows}

    def __str__(self) -> str:
        return self.render()

    def render(self, wide: bool = False) -> str:
        """The table: at most 100 columns with rule codes and a legend below, or `wide` with everything."""
        codes = {rule: f"R{i + 1}" for i, rule in enumerate(dict.fromkeys(r.rule for r in self.rows if r.rule))}
        corrections = self.corrections or (1.0,) * len(self.rows)
        body = [(r.name or "(model)", r.kind if wide else r.kind.replace("ConvTranspose", "ConvT"), r.role, _where(r),
                 r.source if wide else _SOURCES.get(r.source, r.source), r.rule if wide else codes.get(r.rule, ""),
                 str(r.fan_in), str(r.fan_out), _num(c), _num(r.gamma), _num(r.g),
                 (r.gain_from if wide else _GAINS.get(r.gain_from, r.gain_from)) or "-")
                for r, c in zip(self.rows, corrections)]
        header = _COLUMNS if wide else tuple(_NARROW.get(c, c) for c in _COLUMNS)
        widths = [max(len(line[c]) for line in [header, *body]) for c in range(len(header))]
        if not wide:  # long layer names give way, from the middle, so that the table fits
            widths[0] = max(12, min(widths[0], WIDTH - sum(widths[1:]) - 2 * (len(widths) - 1)))
            body = [(_shorten(line[0], widths[0]), *line[1:]) for line in body]
        lines = ["  ".join(cell.rjust(w) if c >= _NUMERIC else cell.ljust(w) for c, (cell, w) in enumerate(zip(line, widths)))
                 .rstrip() for line in [header, *body]]
        lines.insert(1, "  ".join("-" * w for w in widths))
        sources = {s: sum(r.source == s for r in self.rows) for s in ("declared", "discovered", "default")}
        lines.append(f"({len(self.rows)} layers, scheme {self.scheme!r}: " +
                     ", ".join(f"{n} {s}" for s, n in sources.items()) + ")")
        if self.scheme == "proposed":
            lines.append("g = sqrt(gamma * c * fan_in / fan_out); c = s * n_u / fan_in, the stride s and unit size n_u "
                         "of a transposed layer (docs/method.md §3.8), else 1")
        if not wide:
            lines.append("gain: pred = g predicted by the theory, meas = measured on the example input (docs/method.md §3.10)")
            lines.append("src: " + ", ".join(f"{short} = {long}" for long, short in _SOURCES.items()) +
                         " (declared with set_role, discovered by tracing, default when not placed)")
            lines += [f"{code} = {rule}" for rule, code in codes.items()]
        return "\n".join(line for text in lines for line in
                         (textwrap.wrap(text, WIDTH, subsequent_indent="    ") if not wide and len(text) > WIDTH else [text]))


def _where(r: LayerInit) -> str:
    return f"{r.stage or '-'}.{r.block}/{r.stage_blocks}" if r.stage_blocks else ""


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:.4g}"


def _shorten(name: str, width: int) -> str:
    if len(name) <= width:
        return name
    keep = width - 2
    return name[:keep - keep // 2] + ".." + name[len(name) - keep // 2:]


def _correction(model: nn.Module, record: LayerInit) -> float:
    """`c` of one record's layer: the effective fan-in the gain used, over the fan_in shown."""
    try:
        layer = model.get_submodule(record.name) if record.name else model
        return effective_fan_in(layer) / layer_fans(layer)[0]
    except (AttributeError, UserError):  # not a Linear/Conv module of the model: nothing to correct
        return 1.0


def explain(model: nn.Module, scheme: str = "proposed", *, direction: str = "orthogonal",
            discover: bool | None = None, print_table: bool = True, wide: bool = False,
            example_inputs=None) -> ExplainTable:
    """Print (and return) what `initialize(model, scheme)` would set on each layer, without changing `model`.

    The records are `initialize`'s, computed without drawing a direction: each layer's role, gamma and
    gain follow from the model's structure and the layer's shape alone (docs/method.md §3.5, §3.7), so the
    model, its parameters and the global RNG stay as they were, and a VGG-sized model is explained in a
    fraction of its initialization's time (wninit.suite.bench.explain). `g` is the value `initialize`
    stores (rounded to the parameter's dtype); under `pytorch-default` (`g = ||v||`) it is 1 where the
    orthogonal direction has orthonormal rows, and "-" where it depends on the draw. `datadep` and the
    peers need data or set weights by their own procedure, and are not explained here.

    With `example_inputs` the model is traced by running, and under `proposed` the branch ends' g is
    measured on that input (docs/method.md §3.9, §3.10): a measurement needs the drawn directions, so that
    scheme then runs on a copy of the model with a private generator, and the `gain` column says which
    layers' g was measured and which predicted. The printed table fits 100 columns, its rules
    as codes explained below it; `wide=True` prints every rule in full.

    Examples:
        >>> table = wninit.explain(my_vocoder)      # one row per WN layer: role, source, rule, gamma, g
        >>> table.by_name()["ups.0"].gamma
    """
    check_model(model, "wninit.explain")
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
    else:
        layers = _targets(model, scheme, None)
        orthogonal = _direction_kind(scheme, direction) == "orthogonal"
        plans, _ = planned_roles(model, layers, scheme, None, discover, example_inputs)
        records = [layer_record(name, layer, role, gamma, p, _gain(layer, scheme, gamma, orthogonal))
                   for (name, layer), (role, gamma, p) in zip(layers, plans)]
    table = ExplainTable(tuple(records), scheme, tuple(_correction(model, r) for r in records))
    if print_table:
        print(table.render(wide=wide))
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
