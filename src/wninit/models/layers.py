"""Layer factories shared by the models: one place decides plain / WN / BN and declares roles."""
from __future__ import annotations

from torch import nn

from wninit.errors import UserError
from wninit.structure.roles import set_role
from wninit.weightnorm.access import weight_norm

NORMS = ("wn", "bn", "none")


def check_norm(norm: str) -> str:
    if norm not in NORMS:
        raise UserError(f"unknown norm {norm!r}: choose one of {', '.join(map(repr, NORMS))}")
    return norm


def linear(n_in: int, n_out: int, norm: str, wn_api: str, role: str = "hidden", **where) -> nn.Module:
    layer = nn.Linear(n_in, n_out, bias=norm != "bn")
    if norm == "wn":
        weight_norm(layer, wn_api)
    return set_role(layer, role, **where)


def conv(c_in: int, c_out: int, k: int, stride: int, norm: str, wn_api: str, role: str, *,
         bias: bool | None = None, **where) -> nn.Module:
    # Convs keep a bias except before a BN, which has its own shift (bias=True: the reference BN nets keep it).
    layer = nn.Conv2d(c_in, c_out, k, stride=stride, padding=k // 2, bias=norm != "bn" if bias is None else bias)
    if norm == "wn":
        weight_norm(layer, wn_api)
    return set_role(layer, role, **where)


def head(n_in: int, num_classes: int) -> nn.Module:
    # docs/method.md §3.5a: the classifier is a plain nn.Linear with PyTorch's default init, never WN, never re-initialized.
    return set_role(nn.Linear(n_in, num_classes), "head")


def positive(name: str, value: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise UserError(f"{name} must be an integer >= 1, got {value!r}")
    return value


class ReferenceBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d initialized as torch 1.1 did, which the reference BN baselines ran on: weight U(0, 1).

    Drawn at construction from the global RNG (as torch 1.1, and as the classifier head's default init);
    `keeps_init` tells [`wninit.initialize`][wninit.init.schemes.initialize] to leave it, where other BNs get weight 1.
    """
    keeps_init = True

    def reset_parameters(self) -> None:
        self.reset_running_stats()
        if self.affine:
            nn.init.uniform_(self.weight)
            nn.init.zeros_(self.bias)


def batch_norm(channels: int, norm: str, reference: bool = False) -> nn.Module | None:
    """The BN after a conv in BN mode (`reference`: `ReferenceBatchNorm2d`), None otherwise."""
    if norm != "bn":
        return None
    return ReferenceBatchNorm2d(channels) if reference else nn.BatchNorm2d(channels)
