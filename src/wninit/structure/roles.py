"""What each layer is in the paper's terms: declared by a model, or discovered (`wninit.structure.trace`).

A layer's role decides its gamma in `g = sqrt(gamma*fan_in/fan_out)` (docs/method.md §3.5, §3.7):
`stem` (first layer), `hidden` (a layer an activation follows), `block_in` / `block_out` (inside a
residual branch / its last layer), `shortcut` (a projection on the skip path), `head` (the last layer),
`linear` (any other layer nothing follows). Residual layers also carry their stage, their 1-based block index
within the stage and the stage's block count `B_k`. Discovery adds `follow` (the energy factor of what follows
the layer: 1/2 for a ReLU) and, for a branch's last layer, `branch_ratio` (the energy it receives over its
stream's); a declared `gamma` overrides every rule. Declared roles win over discovered ones.
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from wninit.errors import UserError

__all__ = ["ROLES", "Role", "set_role", "get_role", "declared_role", "mark_probe", "probe_points"]

ROLES = ("stem", "hidden", "block_in", "block_out", "shortcut", "head", "linear")
_ATTR = "wninit_role"
_PROBE_ATTR = "wninit_probe"


@dataclass(frozen=True)
class Role:
    kind: str
    stage: int | None = None  # 1-based stage of a residual layer
    block: int | None = None  # 1-based block index within its stage (Hanin's b, docs/method.md §3.6 item 6)
    stage_blocks: int | None = None  # B_k: blocks in that stage (docs/method.md §3.4 "stage-wise")
    gamma: float | None = None  # declared: overrides every rule
    follow: float | None = None  # energy factor of what follows (docs/method.md §3.7); None: the paper's (ReLU after hidden/block_in)
    branch_ratio: float | None = None  # block_out: energy it receives over its stream's (docs/method.md §3.7); None: 1

    def __post_init__(self):
        if self.kind not in ROLES:
            raise UserError(f"unknown role {self.kind!r}: choose one of {', '.join(ROLES)}")
        for name in ("stage", "block", "stage_blocks"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise UserError(f"{name} must be a positive integer, got {value!r}")
        if self.kind in ("block_in", "block_out", "shortcut") and not (self.block and self.stage_blocks):
            raise UserError(f"a {self.kind!r} layer needs its block index and its stage's block count "
                             "(block=, stage_blocks=)")
        if self.block and self.stage_blocks and self.block > self.stage_blocks:
            raise UserError(f"block {self.block} is past its stage's block count {self.stage_blocks}")
        if self.gamma is not None and not (isinstance(self.gamma, (int, float)) and self.gamma > 0):
            raise UserError(f"gamma must be a positive number, got {self.gamma!r}")


def set_role(layer: nn.Module, kind: str, *, stage: int | None = None, block: int | None = None,
             stage_blocks: int | None = None, gamma: float | None = None) -> nn.Module:
    """Declare `layer`'s role (for your own models too); returns the layer.

    `layer` must be a Linear, Conv or ConvTranspose (weight-normed or not); `gamma` overrides the role's rule,
    e.g. for a custom activation after the layer (`gamma = 1/E[phi(z)^2]`, docs/method.md §3.7), or where the
    model's authors chose one the rules do not give (the reference `ResNet` class's stem: 2).

    Examples:
        >>> set_role(block.conv2, "block_out", stage=1, block=3, stage_blocks=6)
    """
    if not isinstance(layer, (nn.Linear, nn.modules.conv._ConvNd)):
        raise UserError(f"set_role takes a Linear, Conv or ConvTranspose layer, got a {type(layer).__name__}: "
                         "declare the role on the layer itself (e.g. block.conv2), not on its block or activation")
    setattr(layer, _ATTR, Role(kind, stage, block, stage_blocks, gamma))
    return layer


def declared_role(layer: nn.Module) -> Role | None:
    """The role declared with [`set_role`][wninit.structure.roles.set_role], or None."""
    return getattr(layer, _ATTR, None)


def get_role(layer: nn.Module) -> Role:
    """The declared role, or `hidden` when none was declared (the paper's feed-forward rule)."""
    return declared_role(layer) or Role("hidden")


def mark_probe(module: nn.Module, kind: str = "layer") -> nn.Module:
    """Mark `module`'s output as a measuring point `h_i` for the diagnostics (`layer` or `block`)."""
    setattr(module, _PROBE_ATTR, kind)
    return module


def probe_points(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """`(name, module)` of every marked measuring point, in registration order."""
    return [(n, m) for n, m in model.named_modules() if getattr(m, _PROBE_ATTR, None)]
