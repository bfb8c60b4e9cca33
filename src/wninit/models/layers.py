"""Layer factories shared by the models: one place decides plain / WN / BN and declares roles."""
from __future__ import annotations

from torch import nn

from ..roles import set_role
from ..weightnorm import weight_norm

NORMS = ("wn", "bn", "none")


def check_norm(norm: str) -> str:
    if norm not in NORMS:
        raise ValueError(f"unknown norm {norm!r}: choose one of 'wn', 'bn', 'none'")
    return norm


def linear(n_in: int, n_out: int, norm: str, wn_api: str, role: str = "hidden", **where) -> nn.Module:
    layer = nn.Linear(n_in, n_out, bias=norm != "bn")
    if norm == "wn":
        weight_norm(layer, wn_api)
    return set_role(layer, role, **where)


def conv(c_in: int, c_out: int, k: int, stride: int, norm: str, wn_api: str, role: str, **where) -> nn.Module:
    # Convs keep a bias except before a BN, which has its own shift.
    layer = nn.Conv2d(c_in, c_out, k, stride=stride, padding=k // 2, bias=norm != "bn")
    if norm == "wn":
        weight_norm(layer, wn_api)
    return set_role(layer, role, **where)


def head(n_in: int, num_classes: int) -> nn.Module:
    # spec §3.5a: the classifier is a plain nn.Linear with PyTorch's default init, never WN, never re-initialized.
    return set_role(nn.Linear(n_in, num_classes), "head")


def positive(name: str, value: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return value
