"""What every peer needs from a plain model: its layers, its residual branches, and module replacement.

The peers find residual branches with [`wninit.structure.trace.discover`][] on every Linear/Conv layer
(`layers="any"`, docs/method.md §3.7), so they apply to any traceable model with no per-model code. An
architecture change wraps the discovered module in place (`replace_module`): the model keeps its class.
"""
from __future__ import annotations

import contextvars
import math
import warnings
from dataclasses import dataclass

import torch
import torch.fx as fx
from torch import nn

from wninit.errors import UserError
from wninit.structure.graph import Graph
from wninit.structure.trace import ResidualSum, Structure, TraceFailure, discover
from wninit.weightnorm.access import is_weight_normed

__all__ = ["LAYERS", "Branch", "check_plain", "plain_structure", "plain_layers", "branches", "replace_module",
           "head_name", "preceding_activations", "ScaledBranch", "InputScale", "activation_variance"]

LAYERS = (nn.Linear, nn.modules.conv._ConvNd)
_NORMS = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm)


@dataclass(frozen=True)
class Branch:
    """One residual branch: its layers in graph order (`end` last), the ones reading the stream (`entries`)."""
    sum: ResidualSum
    layers: tuple[str, ...]
    end: str
    entries: tuple[str, ...]
    projection: str | None


def plain_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Every Linear/Conv/ConvTranspose layer of `model`, in registration order."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, LAYERS)]


def check_plain(model: nn.Module, method: str) -> list[tuple[str, nn.Module]]:
    """The model's layers; one sentence when it has none or one is weight-normed (the peers need plain layers)."""
    layers = plain_layers(model)
    if not layers:
        raise UserError(f"peer {method!r} initializes Linear/Conv layers and this model has none")
    normed = [n for n, m in layers if is_weight_normed(m)]
    if normed:
        raise UserError(f"peer {method!r} is for networks without weight norm and layer {normed[0]!r} is weight-normed: "
                        "build the model with norm='none' or remove its weight norm first")
    norms = [n for n, m in model.named_modules() if isinstance(m, _NORMS)]
    if norms:
        warnings.warn(f"peer {method!r}: the model's normalization layers ({', '.join(norms[:3])}"
                      f"{', ...' if len(norms) > 3 else ''}) are kept; the method's paper trains without them",
                      stacklevel=3)
    return layers


# The example input of the running wninit.peers.apply call, if any: the peers then find branches by running
# the model on it (docs/method.md §3.9) instead of tracing it with torch.fx.
EXAMPLE_INPUTS: contextvars.ContextVar = contextvars.ContextVar("wninit_peer_example_inputs", default=None)


def plain_structure(model: nn.Module, method: str) -> Structure:
    """The discovered structure of a plain (not weight-normed) model, or one sentence on why there is none."""
    check_plain(model, method)
    try:
        return discover(model, layers="any", example_inputs=EXAMPLE_INPUTS.get())
    except TraceFailure as exc:
        raise UserError(f"peer {method!r} finds the residual branches by tracing the model and torch.fx cannot "
                        f"trace it ({exc}); pass example_inputs= a batch the model accepts to "
                        "wninit.peers.apply, so it traces the model by running it") from None


def _nodes(s: Structure) -> dict[str, fx.Node]:
    return {n.name: n for n in s.graph.nodes}


def _back(G: Graph, n: fx.Node, through_activations: bool) -> fx.Node:
    """Back from `n` through shape ops (and activations) to the node that produced its value."""
    while G.tensor_inputs(n) and len(G.tensor_inputs(n)) == 1 and (
            G.is_shape_op(n) or (through_activations and G.activation(n) is not None)):
        n = G.tensor_inputs(n)[0]
    return n


def branches(s: Structure, method: str) -> list[Branch]:
    """The residual branches of `s`, or one sentence saying the model has none (then `method` cannot apply)."""
    if not s.sums:
        raise UserError(f"peer {method!r} acts on residual branches and this model has none (no sum of a stream "
                        "and a branch of Linear/Conv layers computed from it): use 'lsuv', 'delta-orthogonal' or 'edm2'")
    G, nodes = Graph(s.model, s.graph, any_layer=True), _nodes(s)
    found = []
    for r in s.sums:
        layers = [name for name, role in s.roles.items()
                  if role.kind in ("block_in", "block_out") and (role.stage, role.block) == (r.stage, r.block)]
        layers = sorted(layers, key=lambda name: G.index[nodes[s.layer_nodes[name]]])
        layers = [n for n in layers if n != r.branch_end] + [r.branch_end]
        entries = tuple(n for n in layers if _reads(G, nodes[s.layer_nodes[n]], r.stream))
        found.append(Branch(r, tuple(layers), r.branch_end, entries, r.projection))
    read = [n for b in found for n in b.layers if _read_not_called(s.model, n)]
    if read:
        raise UserError(f"peer {method!r} wraps the layers of each residual branch and {read[0]!r} is the output "
                        "projection of an nn.MultiheadAttention, which reads its weight without calling it (a wrapper "
                        "would be skipped): this peer cannot apply to a model with nn.MultiheadAttention in a branch")
    return found


def _read_not_called(model: nn.Module, name: str) -> bool:
    """Whether layer `name` is `nn.MultiheadAttention.out_proj`, whose weight the attention reads directly."""
    parent, _, child = name.rpartition(".")
    return child == "out_proj" and isinstance(model.get_submodule(parent), nn.MultiheadAttention)


def _reads(G: Graph, layer: fx.Node, stream: str) -> bool:
    """Whether `layer`'s input is the stream itself, through shape ops and activations only."""
    ins = G.tensor_inputs(layer)
    return bool(ins) and _back(G, ins[0], True).name == stream


def preceding_activations(s: Structure) -> dict:
    """Layer name -> the [`wninit.structure.activations.Activation`][] whose output it reads (None: no activation)."""
    G, nodes, found = Graph(s.model, s.graph, any_layer=True), _nodes(s), {}
    for name, node_name in s.layer_nodes.items():
        ins = G.tensor_inputs(nodes[node_name])
        found[name] = G.activation(_back(G, ins[0], False)) if ins else None
    return found


def head_name(s: Structure) -> str | None:
    """The classifier: the discovered `head` layer (the last layer, nothing after it but shape ops)."""
    heads = [n for n, role in s.roles.items() if role.kind == "head"]
    return heads[-1] if heads else None


def replace_module(model: nn.Module, name: str, new: nn.Module) -> None:
    """Put `new` where the submodule `name` was."""
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, new)


def activation_variance(act) -> float:
    """`Var[phi(z)]` for `z ~ N(0, 1)` (ReLU: `(1 - 1/pi)/2`), by the trapezoid rule on a fine grid: exact to
    ~1e-9 for activations with a kink, where Gauss-Hermite quadrature is off by ~1e-3."""
    z = torch.linspace(-12.0, 12.0, 240_001, dtype=torch.float64)
    density = torch.exp(-z * z / 2) / math.sqrt(2 * math.pi)
    with torch.no_grad():
        v = act.fn(z.clone()).double()
    mean = float(torch.trapezoid(v * density, z))
    return float(torch.trapezoid(v * v * density, z)) - mean * mean


class ScaledBranch(nn.Module):
    """`alpha * layer(x)`: the residual branch's output times a scalar (learnable or fixed)."""

    def __init__(self, layer: nn.Module, alpha: float, learnable: bool = True):
        super().__init__()
        self.layer = layer
        value = torch.tensor(float(alpha), dtype=_dtype(layer), device=_device(layer))
        if learnable:
            self.alpha = nn.Parameter(value)
        else:
            self.register_buffer("alpha", value)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.alpha * self.layer(x)


class InputScale(nn.Module):
    """`layer(x / beta)`: a branch that reads its stream divided by the stream's expected std (NF-ResNets)."""

    def __init__(self, layer: nn.Module, beta: float):
        super().__init__()
        self.layer, self.beta = layer, float(beta)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x / self.beta)


def _dtype(m: nn.Module) -> torch.dtype:
    p = next(m.parameters(), None)
    return p.dtype if p is not None else torch.get_default_dtype()


def _device(m: nn.Module) -> torch.device:
    p = next(m.parameters(), None)
    return p.device if p is not None else torch.device("cpu")
