"""The normalizer-free peers of the proposed init, each from its paper, on any model (docs/peers.md).

`apply(model, method, **options)` runs one of `PEERS` on a plain (not weight-normed) network and
returns the model (EDM2 returns a rebuilt `torch.fx.GraphModule`). The residual branches are found by
[`wninit.structure.trace.discover`][] (`layers="any"`), so no model needs code of its own. Inits change the
weights; transforms wrap the discovered modules (a branch scalar, a standardized layer).

A run of the suite names a peer as `RunConfig.peer`: `"fixup"` or, with options, `"nf:alpha=0.4"`
([`parse_peer`][wninit.peers.parse_peer]).

Examples:
    >>> model = wninit.models.ResNet(20, 10, norm="none")
    >>> model = wninit.peers.apply(model, "rezero")
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Callable

from torch import nn

from wninit.errors import UserError
from wninit.peers.delta_orthogonal import delta_orthogonal
from wninit.peers.edm2 import edm2
from wninit.peers.fixup import fixup
from wninit.peers.lsuv import lsuv
from wninit.peers.nf import nf
from wninit.peers.rezero import rezero
from wninit.peers.skipinit import skipinit

__all__ = ["PEERS", "Peer", "apply", "parse_peer", "check_peer"]

RUN_OPTIONS = ("batch", "generator")  # given by the caller (the training run), not by the user's spec


@dataclass(frozen=True)
class Peer:
    """One method: its function, what it needs from the model, what it changes."""
    name: str
    fn: Callable[..., nn.Module]
    needs: str  # "residual" (residual branches), "conv" (convolutions) or "any"
    changes: str

    @property
    def options(self) -> dict[str, object]:
        """The user options the method takes, with their defaults."""
        params = inspect.signature(self.fn).parameters
        return {k: p.default for k, p in params.items() if p.kind is p.KEYWORD_ONLY and k not in RUN_OPTIONS}


PEERS = {p.name: p for p in (
    Peer("fixup", fixup, "residual", "init + scalar biases and a multiplier per branch"),
    Peer("skipinit", skipinit, "residual", "a learnable scalar per branch (0)"),
    Peer("rezero", rezero, "residual", "a learnable scalar per branch (0)"),
    Peer("nf", nf, "residual", "standardized layers, branch x/beta in, alpha out"),
    Peer("lsuv", lsuv, "any", "init (needs a batch)"),
    Peer("delta-orthogonal", delta_orthogonal, "conv", "init"),
    Peer("edm2", edm2, "any", "magnitude-preserving layers, sums and activations"),
)}


def _peer(method: str) -> Peer:
    if method not in PEERS:
        raise UserError(f"unknown peer {method!r}: choose one of {', '.join(PEERS)}")
    return PEERS[method]


def _check_options(peer: Peer, options: dict) -> None:
    allowed = peer.options
    for key in options:
        if key not in allowed and key not in RUN_OPTIONS:
            listed = ", ".join(allowed) or "none"
            raise UserError(f"unknown option {key!r} for peer {peer.name!r}: its options are {listed}")


def apply(model: nn.Module, method: str, *, example_inputs=None, **options) -> nn.Module:
    """Apply the peer `method` (one of `PEERS`) to `model`; returns the model to use.

    `batch` and `generator` are passed to the methods that take them (LSUV's batch, the random draws)
    and ignored by the others; any other option must be one of the method's (`Peer.options`).
    `example_inputs` (a tensor, a tuple of positional arguments or a dict of keyword arguments) lets the
    peers that find residual branches do so on models torch.fx cannot trace, by running the model once
    (docs/method.md §3.9).

    Examples:
        >>> model = wninit.peers.apply(wninit.models.ResNet(20, 10, norm="none"), "nf", alpha=0.2)
    """
    peer = _peer(method)
    _check_options(peer, options)
    params = inspect.signature(peer.fn).parameters
    kwargs = {k: v for k, v in options.items() if k in params}
    from wninit.peers._graph import EXAMPLE_INPUTS

    token = EXAMPLE_INPUTS.set(example_inputs)
    try:
        return peer.fn(model, **kwargs)
    finally:
        EXAMPLE_INPUTS.reset(token)


def parse_peer(spec: str) -> tuple[str, dict]:
    """`"nf:alpha=0.4,..."` -> `("nf", {"alpha": 0.4})`; `"none"` -> `("none", {})`; checked."""
    if not isinstance(spec, str) or not spec:
        raise UserError(f"a peer is a name such as 'fixup' or 'nf:alpha=0.4', got {spec!r}")
    name, _, rest = spec.partition(":")
    if name == "none" and not rest:
        return name, {}
    peer = _peer(name)
    options = {}
    for item in filter(None, rest.split(",")):
        key, eq, value = item.partition("=")
        if not eq:
            raise UserError(f"peer option {item!r} in {spec!r} must be key=value, e.g. 'nf:alpha=0.4'")
        options[key.strip()] = _number(value.strip(), spec)
    _check_options(peer, options)
    for key in options:
        if key in RUN_OPTIONS:
            raise UserError(f"option {key!r} of peer {name!r} is given by the run, not by {spec!r}; remove it")
    return name, options


def check_peer(spec: str, arch: str | None = None, norm: str | None = None) -> None:
    """One sentence when the run's peer cannot apply: unknown, bad options, or a suite net it does not fit."""
    name, _ = parse_peer(spec)
    if name == "none":
        return
    if norm is not None and norm != "none":
        raise UserError(f"peer {name!r} is for networks without normalization: set norm='none', got norm={norm!r}")
    needs = PEERS[name].needs
    if needs == "residual" and arch in ("mlp", "cnn"):
        raise UserError(f"peer {name!r} acts on residual branches and arch {arch!r} has none: use arch 'resnet' or "
                        "'wrn', or a peer for any network ('lsuv', 'edm2')")
    if needs == "conv" and arch == "mlp":
        raise UserError(f"peer {name!r} initializes convolutions and arch 'mlp' has none: use 'lsuv' or 'edm2'")


def _number(text: str, spec: str):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    if text in ("true", "false"):
        return text == "true"
    raise UserError(f"peer option value {text!r} in {spec!r} must be a number or true/false")
