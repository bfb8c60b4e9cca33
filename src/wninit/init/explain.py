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
from wninit.weightnorm.lifecycle import copy_model
from wninit.init.schemes import LayerInit, initialize

__all__ = ["ExplainTable", "explain"]

_COLUMNS = ("layer", "kind", "role", "stage.block/B_k", "source", "rule", "fan_in", "fan_out", "gamma", "g")


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
                 _num(r.gamma), _num(r.g)) for r in self.rows]
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
            discover: bool | None = None, print_table: bool = True) -> ExplainTable:
    """Print (and return) what `initialize(model, scheme)` would set on each layer, without changing `model`.

    The scheme runs on a copy of the model with a private generator, so neither the model nor the global RNG
    moves. `datadep` needs data and is not explained here.

    Examples:
        >>> table = wninit.explain(my_vocoder)      # one row per WN layer: role, source, rule, gamma, g
        >>> table.by_name()["ups.0"].gamma
    """
    if scheme == "datadep":
        raise UserError("explain does not run 'datadep' (it needs a batch of data): explain another scheme, "
                         "or call wninit.initialize(model, 'datadep', batch=x) and read its records")
    twin = copy_model(model)
    records = initialize(twin, scheme, direction=direction, generator=torch.Generator().manual_seed(0),
                         discover=discover)
    table = ExplainTable(tuple(records), scheme)
    if print_table:
        print(table)
    return table
