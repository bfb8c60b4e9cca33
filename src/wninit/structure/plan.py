"""Which role every WN layer of a model gets, and from where: declared, discovered, or the default.

Declared roles ([`wninit.structure.roles.set_role`][], what wninit's own models do) win. The other WN layers take
their role from [`wninit.structure.trace.discover`][]. A layer discovery cannot place (the model cannot be traced,
or the layer is not called where the trace can see it) gets the default `hidden` (gamma 2, the paper's
feed-forward rule), and one warning sentence names every such layer (docs/method.md §3.7). A model torch.fx
cannot trace is never left to the default: without an example input to trace it by running (docs/method.md
§3.9) one `UserError` sentence says why and asks for one.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

from torch import nn

from wninit.errors import UserError
from wninit.structure.roles import Role, declared_role

__all__ = ["Placement", "place", "plan"]

DEFAULT_ROLE = Role("hidden")


@dataclass(frozen=True)
class Placement:
    """A WN layer's role and where it came from (`declared` / `discovered` / `default`) with its rule."""
    role: Role
    source: str
    rule: str


def _declared_rule(role: Role) -> str:
    if role.gamma is not None:
        return "declared gamma"
    return {"hidden": "relu follows", "block_in": "relu follows", "block_out": "branch end: 1/B_k",
            "stem": "stem", "shortcut": "skip projection", "head": "nothing follows",
            "linear": "nothing follows"}[role.kind]


def place(model: nn.Module, layers: list[tuple[str, nn.Module]], *, discover: bool | None = None,
          example_inputs=None) -> dict[str, Placement]:
    """A [`Placement`][wninit.structure.plan.Placement] for each `(name, layer)` of `model` (`plan` without the structure)."""
    return plan(model, layers, discover=discover, example_inputs=example_inputs)[0]


def plan(model: nn.Module, layers: list[tuple[str, nn.Module]], *, discover: bool | None = None,
         example_inputs=None):
    """`(placements, structure)`: a [`Placement`][wninit.structure.plan.Placement] for each `(name, layer)` of `model`, and the
    discovered [`wninit.structure.trace.Structure`][] (None when the model was not traced).

    Args:
        discover: None traces the model only when some layer has no declared role; True always traces
            (declared roles still win); False never traces (undeclared layers get the default).
        example_inputs: traces by running one forward pass on it (docs/method.md §3.9) instead of torch.fx.

    Raises:
        UserError: torch.fx cannot trace the model, no `example_inputs` was given and some layer has no
            declared role: one sentence says why and asks for an example input.
    """
    declared = {name: declared_role(m) for name, m in layers}
    out = {name: Placement(r, "declared", _declared_rule(r)) for name, r in declared.items() if r is not None}
    missing = [name for name, _ in layers if name not in out]
    if discover is False or (discover is None and not missing):
        return (_with_defaults(out, missing, model, None) if missing else out), None
    from wninit.structure.trace import TraceFailure
    from wninit.structure.trace import discover as run_discovery

    try:
        structure = run_discovery(model, example_inputs=example_inputs)
    except TraceFailure as exc:
        if not missing:
            return out, None
        raise UserError(f"torch.fx cannot trace {type(model).__name__} ({exc}), so wninit cannot place its "
                        f"{len(missing)} undeclared weight-normed layer(s) ({_shown(missing)}): pass example_inputs= "
                        "a batch the model accepts (the CLI's --input-shape) to trace it by running, or declare "
                        "their roles with wninit.set_role") from None
    for name in missing:
        if name in structure.roles:
            out[name] = Placement(structure.roles[name], "discovered", structure.rules[name])
    _warn_unknown(model, {name: structure.unknown[name] for name in missing if name in structure.unknown})
    unplaced = [name for name in missing if name not in out]
    why = "the traced graph does not call them" if example_inputs is None else "the forward pass does not call them"
    return (_with_defaults(out, unplaced, model, why) if unplaced else out), structure


def _warn_unknown(model: nn.Module, unknown: dict[str, str]) -> None:
    """One sentence naming the layers followed by an op of no known second moment (docs/method.md §3.7)."""
    if not unknown:
        return
    shown = [f"{op} after {name}" for name, op in list(unknown.items())[:4]]
    more = f" and {len(unknown) - 4} more" if len(unknown) > 4 else ""
    warnings.warn(f"wninit knows no second moment for what follows {len(unknown)} weight-normed layer(s) of "
                  f"{type(model).__name__} ({'; '.join(shown)}{more}), so their gamma takes its factor as 1: "
                  "declare the activation with wninit.register_activation(cls, second_moment), or its gamma with "
                  "wninit.set_role(layer, ..., gamma=)", stacklevel=3)


def _shown(names: list[str]) -> str:
    return ", ".join(n or "(the model itself)" for n in names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")


def _with_defaults(out: dict, names: list[str], model: nn.Module, why: str | None) -> dict[str, Placement]:
    if names:
        shown = _shown(names)
        reason = f" ({why})" if why else ""
        warnings.warn(f"wninit could not place {len(names)} weight-normed layer(s) of {type(model).__name__}{reason}, "
                      f"so they get the default role 'hidden' (gamma 2): {shown}; declare their roles with "
                      "wninit.set_role to silence this", stacklevel=3)
    for name in names:
        out[name] = Placement(DEFAULT_ROLE, "default", "default (not placed)")
    return out
