"""EDM2's magnitude-preserving network: forced weight normalization, magnitude-preserving sums and activations.

Analyzing and Improving the Training Dynamics of Diffusion Models - Karras, Aittala, Lehtinen, Hellsten, Aila &
Laine (2024).
"""
from __future__ import annotations

import math
import warnings

import torch
import torch.fx as fx
from torch import nn
from torch.nn.utils import parametrize

from wninit.errors import UserError
from wninit.structure.graph import CATS, Graph
from wninit.peers._graph import check_plain, plain_layers
from wninit.structure.trace import TraceFailure, discover

__all__ = ["edm2", "MagnitudePreserving", "magnitude_preserving_", "mp_sum", "normalize_rows", "unit_axis"]

_EPS = 1e-4  # the paper's epsilon in normalize()


def unit_axis(layer: nn.Module) -> int:
    """The weight axis of output units: 0, or 1 for a transposed conv (weight `(in, out, k)`)."""
    return 1 if getattr(layer, "transposed", False) else 0


def normalize_rows(w: torch.Tensor, axis: int = 0) -> torch.Tensor:
    r"""Each output unit's weights scaled to unit mean square (norm `sqrt(N)`), the paper's `normalize`.

    $$
    \hat w_i = \frac{w_i}{\epsilon + \|w_i\| / \sqrt{N}}
    $$

    Examples:
        >>> normalize_rows(torch.randn(4, 9)).square().mean(dim=1)  # ~1
    """
    dims = [d for d in range(w.dim()) if d != axis]
    norm = torch.linalg.vector_norm(w, dim=dims, keepdim=True, dtype=torch.float32)
    fan_in = w.numel() // w.size(axis)
    return w / (_EPS + norm / math.sqrt(fan_in)).to(w.dtype)


class MagnitudePreserving(nn.Module):
    """A weight parametrization: the used weight is `normalize(W) / sqrt(N)`, rows of unit norm.

    `radius`: the norm the stored rows are kept at (None: the paper's `sqrt(N)`, unit mean square).
    """

    def __init__(self, axis: int, radius: float | None = None):
        super().__init__()
        self.axis, self.radius = axis, radius

    def _scale(self, weight: torch.Tensor) -> float:
        """`sqrt(N)/radius`: the stored rows taken to the paper's norm, so its epsilon acts as in the paper."""
        return 1.0 if self.radius is None else math.sqrt(weight.numel() // weight.size(self.axis)) / self.radius

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        fan_in = weight.numel() // weight.size(self.axis)
        return normalize_rows(weight * self._scale(weight), self.axis) / math.sqrt(fan_in)

    def project(self, weight: torch.Tensor) -> torch.Tensor:
        """The stored weight put back on its sphere: `normalize(W)`, of rows of norm `radius` when set."""
        scale = self._scale(weight)
        return normalize_rows(weight * scale, self.axis) / scale


def _force_normalize(layer: nn.Module, _args) -> None:
    """Forced weight normalization (the paper's section 2.3): before each training forward, `W <- normalize(W)`."""
    if layer.training:
        with torch.no_grad():
            stored = layer.parametrizations.weight.original
            stored.copy_(layer.parametrizations.weight[0].project(stored))


def magnitude_preserving_(layer: nn.Module, generator: torch.Generator | None = None,
                          radius: float | None = None) -> nn.Module:
    r"""Make a Linear/Conv magnitude-preserving in place: stored `W ~ N(0, 1)` projected on its sphere, used
    `normalize(W)/sqrt(N)` (unit-norm rows), no bias, `W` re-projected before every training forward;
    returns the layer. `radius`: see `MagnitudePreserving`."""
    with torch.no_grad():
        layer.weight.normal_(0.0, 1.0, generator=generator)
    layer.register_parameter("bias", None)  # the paper removes every bias
    parametrize.register_parametrization(layer, "weight", MagnitudePreserving(unit_axis(layer), radius))
    _force_normalize(layer, ())
    layer.register_forward_pre_hook(_force_normalize)
    return layer


def mp_sum(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    r"""Magnitude-preserving sum: `((1-t) a + t b) / sqrt((1-t)^2 + t^2)`.

    Analyzing and Improving the Training Dynamics of Diffusion Models - Karras et al. (2024), eq. (sum).

    Examples:
        >>> mp_sum(torch.randn(1000), torch.randn(1000), 0.3).square().mean()  # ~1
    """
    return a.lerp(b, t) / math.sqrt((1 - t) ** 2 + t ** 2)


def _scaled(x: torch.Tensor, c: float) -> torch.Tensor:
    return x * c


def edm2(model: nn.Module, *, t: float = 0.3, unit_rows: bool = False,
         generator: torch.Generator | None = None) -> nn.Module:
    r"""Rebuild a plain network as EDM2's magnitude-preserving one; returns a new `torch.fx.GraphModule`.

    Analyzing and Improving the Training Dynamics of Diffusion Models - Karras, Aittala, Lehtinen, Hellsten,
    Aila & Laine (2024), sections 2-3 (config G).

    - every Linear/Conv is made magnitude-preserving (`magnitude_preserving_`: forced weight
      normalization, unit-norm rows, no bias), its stored weight drawn from `N(0, 1)`;
    - every residual sum `x + f(x)` becomes `mp_sum` `(x, f(x), t)`;
    - every activation `phi` becomes `phi(x) / sqrt(E[phi(z)^2])`, `z ~ N(0, 1)` (ReLU: `sqrt(2) relu`;
      the paper's `mp_silu` is `silu / 0.596`).

    Args:
        model: a plain network traceable by torch.fx (`example_inputs` given to `wninit.peers.apply` are not
            used: the rebuilt network is the traced program).
        t: the residual branch's weight in the sums (the paper's 0.3).
        unit_rows: keep the stored rows at norm 1 instead of the paper's `sqrt(N)`. The network is the same;
            the paper's Adam is invariant to that radius, but SGD's relative step on a row of norm `r` is
            `lr/r^2`: with `sqrt(N)` rows it is `N` times smaller than on a WN direction of norm 1.
        generator: the random stream of the weight draws.

    Examples:
        >>> model = wninit.peers.apply(wninit.models.ResNet(20, 10, norm="none"), "edm2")
    """
    if not (isinstance(t, (int, float)) and 0 < t < 1):
        raise UserError(f"peer 'edm2' needs the sum weight t in (0, 1) (the paper's 0.3), got {t!r}")
    check_plain(model, "edm2")
    try:  # the rebuilt model is the traced program: a forward recorded by running (example_inputs) is none
        s = discover(model, layers="any")
    except TraceFailure as exc:
        raise UserError(f"peer 'edm2' rebuilds the model's forward as a torch.fx program (magnitude-preserving sums "
                        f"and activations) and torch.fx cannot trace {type(model).__name__} ({exc}); a forward "
                        "recorded by running an example input is no program to rebuild: use another peer") from None
    G = Graph(model, s.graph, any_layer=True)
    nodes = {n.name: n for n in s.graph.nodes}
    for r in s.sums:
        if nodes[r.node].target not in CATS:  # a dense block's concatenation is kept (warned below)
            _to_mp_sum(G, nodes[r.node], s.layer_nodes[r.branch_end], float(t))
    acts = [(n, G.activation(n)) for n in list(s.graph.nodes) if G.activation(n) is not None]
    for n, act in acts:
        with s.graph.inserting_after(n):
            scaled = s.graph.call_function(_scaled, (n, 1.0 / math.sqrt(act.second_moment())))
        n.replace_all_uses_with(scaled, delete_user_cb=lambda user: user is not scaled)
    if any(n.target in CATS for n in s.graph.nodes):
        warnings.warn("edm2: concatenations are kept as they are (the paper's magnitude-preserving mp_cat is not applied)",
                      stacklevel=2)
    unseen = [name for name, _ in plain_layers(model) if name not in s.layer_nodes]
    if unseen:  # nn.MultiheadAttention's out_proj: read inside the attention, not called by the program
        warnings.warn(f"edm2: {len(unseen)} layer(s) the traced program does not call are kept as they are (not "
                      f"magnitude-preserving): {', '.join(unseen[:4])}{', ...' if len(unseen) > 4 else ''}", stacklevel=2)
    for name in s.layer_nodes:
        magnitude_preserving_(model.get_submodule(name), generator, 1.0 if unit_rows else None)
    return fx.GraphModule(model, s.graph)


def _to_mp_sum(G: Graph, node: fx.Node, end_node: str, t: float) -> None:
    """Turn the residual sum `node` into `mp_sum(skip, branch, t)`: the branch is the operand that reaches
    the branch's last layer back through single-input ops."""
    a, b = node.args[:2]

    def reaches(n):
        while n.name != end_node and len(G.tensor_inputs(n)) == 1:
            n = G.tensor_inputs(n)[0]
        return n.name == end_node
    skip, branch = (a, b) if reaches(b) else (b, a)
    node.op, node.target, node.args, node.kwargs = "call_function", mp_sum, (skip, branch, t), {}
