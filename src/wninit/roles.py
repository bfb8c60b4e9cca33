"""What each layer is in the paper's terms, declared by the model so that schemes never guess.

A layer's role decides its gamma in ``g = sqrt(gamma*fan_in/fan_out)`` (spec §3.5):
``stem`` (first conv, no ReLU follows), ``hidden`` (feed-forward layer followed by a ReLU),
``block_in`` / ``block_out`` (first / second conv of a residual block), ``shortcut`` (1x1 projection),
``head`` (final classifier). Residual layers also carry their stage, their 1-based block index within
the stage and the stage's block count ``B_k``. A WN layer with no declared role is ``hidden``.
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

__all__ = ["ROLES", "Role", "set_role", "get_role", "mark_probe", "probe_points"]

ROLES = ("stem", "hidden", "block_in", "block_out", "shortcut", "head")
_ATTR = "wninit_role"
_PROBE_ATTR = "wninit_probe"


@dataclass(frozen=True)
class Role:
    kind: str
    stage: int | None = None  # 1-based stage of a residual layer
    block: int | None = None  # 1-based block index within its stage (Hanin's b, spec §3.6 item 6)
    stage_blocks: int | None = None  # B_k: blocks in that stage (spec §3.4 "stage-wise")
    gamma: float | None = None  # declared by the model; wins over the role's gamma (schemes.role_gamma)

    def __post_init__(self):
        if self.kind not in ROLES:
            raise ValueError(f"unknown role {self.kind!r}: choose one of {', '.join(ROLES)}")
        if self.gamma is not None and not self.gamma > 0:
            raise ValueError(f"a declared gamma must be > 0, got {self.gamma!r}")
        if self.kind in ("block_in", "block_out", "shortcut") and not (self.block and self.stage_blocks):
            raise ValueError(f"a {self.kind!r} layer needs its block index and its stage's block count")


def set_role(layer: nn.Module, kind: str, *, stage: int | None = None, block: int | None = None,
             stage_blocks: int | None = None, gamma: float | None = None) -> nn.Module:
    """Declare ``layer``'s role (for your own models too); returns the layer.

    ``gamma``: the layer's own gamma, where the model's authors chose one the role table does not give
    (the reference ``ResNet`` class's stem: 2).
    """
    setattr(layer, _ATTR, Role(kind, stage, block, stage_blocks, gamma))
    return layer


def get_role(layer: nn.Module) -> Role:
    """The declared role, or ``hidden`` when none was declared (the paper's feed-forward rule)."""
    return getattr(layer, _ATTR, None) or Role("hidden")


def mark_probe(module: nn.Module, kind: str = "layer") -> nn.Module:
    """Mark ``module``'s output as a measuring point ``h_i`` for the diagnostics (``layer`` or ``block``)."""
    setattr(module, _PROBE_ATTR, kind)
    return module


def probe_points(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(name, module)`` of every marked measuring point, in registration order."""
    return [(n, m) for n, m in model.named_modules() if getattr(m, _PROBE_ATTR, None)]
