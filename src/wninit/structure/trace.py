"""What a model is: trace it once, find what follows every WN layer and every residual sum (docs/method.md §3.7).

[`discover`][wninit.structure.trace.discover] traces the model with `torch.fx` (symbolically: no example input is needed, so
`initialize(model)` stays one call) and reads the graph:

- a **residual sum** is an `add` whose one operand (the skip) is the other operand's stream `x` itself, or
  `x` through one WN layer with nothing after it (a projection shortcut), while the other operand (the branch)
  is computed from `x` alone through at least one WN layer;
- a **stage** is a chain of residual sums each of whose stream is the previous sum's output (through ops that
  keep the norm, e.g. a ReLU after the sum); a projection shortcut starts a new stage, and `B_k` is the chain's
  length (docs/method.md §3.4, "stage-wise");
- an **energy pass** follows the expected squared norm per position through the graph: a WN layer multiplies it
  by its gamma, an activation by its second moment (`wninit.structure.activations`), a sum adds its operands'.

From these, each WN layer gets a [`wninit.structure.roles.Role`][]: `hidden`/`stem`/`head`/`linear` outside
residual branches, `block_in`/`block_out` inside one, `shortcut` on a skip path, with the energy factor of
what follows it (`follow`) and, for a branch's last layer, the energy it receives relative to its stream
(`branch_ratio`). Models that `torch.fx` cannot trace raise [`TraceFailure`][wninit.structure.trace.TraceFailure].
"""
from __future__ import annotations

import operator
from dataclasses import dataclass, field

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from wninit.errors import UserError
from wninit.structure.activations import Activation, activation_of_call, activation_of_module, is_registered
from wninit.structure.roles import Role
from wninit.weightnorm.access import is_weight_normed

__all__ = ["Structure", "ResidualSum", "TraceFailure", "discover", "trace"]

_LAYERS = (nn.Linear, nn.modules.conv._ConvNd)
_SHAPE_METHODS = {"view", "reshape", "flatten", "permute", "transpose", "contiguous", "squeeze", "unsqueeze",
                  "clone", "to", "float", "double", "half", "bfloat16", "type_as", "expand_as", "unflatten", "narrow"}
_SHAPE_FUNCS = {torch.flatten, torch.reshape, torch.permute, torch.transpose, torch.squeeze, torch.unsqueeze,
                torch.clone, F.dropout, F.dropout1d, F.dropout2d, F.dropout3d, F.pad, F.interpolate, torch.narrow}
_SHAPE_MODULES = (nn.Identity, nn.Flatten, nn.Unflatten, nn.modules.dropout._DropoutNd, nn.Upsample,
                  nn.ZeroPad1d, nn.ZeroPad2d, nn.ZeroPad3d, nn.ConstantPad1d, nn.ConstantPad2d, nn.ConstantPad3d,
                  nn.ReflectionPad1d, nn.ReflectionPad2d, nn.ReplicationPad1d, nn.ReplicationPad2d)
_MAX_POOLS = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d)
_AVG_POOLS = (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d,
              nn.AdaptiveAvgPool3d)
_NORMS = (nn.LayerNorm, nn.GroupNorm, nn.modules.batchnorm._BatchNorm, nn.modules.instancenorm._InstanceNorm,
          nn.LocalResponseNorm, nn.RMSNorm)
_ADDS = {operator.add, operator.iadd, torch.add, "add", "add_"}
_MULS = {operator.mul, operator.imul, torch.mul, "mul", "mul_"}
_DIVS = {operator.truediv, operator.itruediv, torch.div, "div", "div_"}


class TraceFailure(RuntimeError):
    """torch.fx could not trace the model (data-dependent control flow, an untraceable call)."""


@dataclass(frozen=True)
class ResidualSum:
    """One residual sum: `node` adds the `branch` (from `stream`) to the skip (`stream` or its projection)."""
    node: str
    stream: str
    branch_end: str  # the WN layer (module name) whose output the branch adds
    projection: str | None  # the shortcut WN layer, None for an identity skip
    stage: int
    block: int
    stage_blocks: int
    approximations: tuple[str, ...]  # ops in the branch whose energy factor is assumed, not derived


@dataclass
class Structure:
    """The result of [`discover`][wninit.structure.trace.discover]: a discovered role per WN layer, the residual sums, the traced graph."""
    roles: dict[str, Role]
    rules: dict[str, str]
    sums: list[ResidualSum]
    model: nn.Module
    graph: fx.Graph
    layer_nodes: dict[str, str] = field(default_factory=dict)  # WN layer name -> its output node
    energy: dict[str, float] = field(default_factory=dict)  # node name -> expected energy per position (input: 1)

    def graph_module(self) -> fx.GraphModule:
        """The traced graph as a runnable module (built on demand: code generation costs more than the trace)."""
        return fx.GraphModule(self.model, self.graph)


class _Tracer(fx.Tracer):
    """Every Linear/Conv (weight-normed by any API) and every torch.nn module is a leaf; user modules are inlined."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, _LAYERS) or is_registered(m) or super().is_leaf_module(m, qualname)


def trace(model: nn.Module) -> fx.Graph:
    """The model's graph; raises [`TraceFailure`][wninit.structure.trace.TraceFailure] with torch.fx's reason when it cannot be traced."""
    try:
        return _Tracer().trace(model)
    except Exception as exc:  # fx raises TraceError, TypeError, NotImplementedError... on untraceable code
        raise TraceFailure(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:200]) from exc


class _Graph:
    """The traced graph with the lookups the analysis needs."""

    def __init__(self, model: nn.Module, graph: fx.Graph, any_layer: bool = False):
        self.model, self.graph, self.any_layer = model, graph, any_layer
        self.nodes = list(graph.nodes)
        self.index = {n: i for i, n in enumerate(self.nodes)}
        self.modules = dict(model.named_modules())

    def module(self, n: fx.Node) -> nn.Module | None:
        return self.modules.get(n.target) if n.op == "call_module" else None

    def is_wn(self, n: fx.Node) -> bool:
        m = self.module(n)
        return m is not None and isinstance(m, _LAYERS) and (self.any_layer or is_weight_normed(m))

    def activation(self, n: fx.Node) -> Activation | None:
        if n.op == "call_module":
            return activation_of_module(self.module(n))
        if n.op in ("call_function", "call_method"):
            return activation_of_call(n.target, n.args[1:] if n.op == "call_method" else n.args[1:], n.kwargs)
        return None

    def tensor_inputs(self, n: fx.Node) -> list[fx.Node]:
        return [a for a in n.all_input_nodes if a.op != "get_attr"]

    def is_shape_op(self, n: fx.Node) -> bool:
        if n.op == "call_module":
            return isinstance(self.module(n), _SHAPE_MODULES)
        if n.op == "call_method":
            return n.target in _SHAPE_METHODS
        if n.op == "call_function":
            if n.target is operator.getitem:  # slicing a tensor; an item of a chunk is scaled in _energy
                return n.args[0].op != "call_method" or n.args[0].target not in ("chunk", "split")
            return n.target in _SHAPE_FUNCS
        return False

    def scalar_factor(self, n: fx.Node) -> float | None:
        """c**2 for `x * c` or `x / c` with a Python number c, else None."""
        if n.op not in ("call_function", "call_method") or len(n.args) != 2:
            return None
        a, b = n.args
        if isinstance(b, fx.Node) and not isinstance(a, fx.Node):
            a, b = b, a
        if not isinstance(a, fx.Node) or not isinstance(b, (int, float)):
            return None
        if n.target in _MULS:
            return float(b) ** 2
        if n.target in _DIVS and b != 0:
            return 1.0 / float(b) ** 2
        return None

    def is_sum(self, n: fx.Node) -> bool:
        return n.op in ("call_function", "call_method") and n.target in _ADDS and len(self.tensor_inputs(n)) == 2 \
            and all(isinstance(a, fx.Node) for a in n.args[:2])


def _skip_origins(G: _Graph, n: fx.Node) -> list[tuple[fx.Node, fx.Node | None]]:
    """Where a skip operand may start, `(stream, projection)`: back through shape ops (identity skip), then
    on through one WN layer and shape ops (projection shortcut)."""
    def through_shape_ops(m):
        while G.is_shape_op(m) and G.tensor_inputs(m):
            m = G.tensor_inputs(m)[0]
        return m
    x = through_shape_ops(n)
    if G.is_wn(x) and isinstance(x.args[0], fx.Node):
        return [(x, None), (through_shape_ops(x.args[0]), x)]
    return [(x, None)]


def _branch(G: _Graph, x: fx.Node, operand: fx.Node) -> list[fx.Node] | None:
    """The nodes computed from `x` alone that lead to `operand`, or None when the operand mixes in
    another tensor (then the sum is not a residual sum of `x`) or does not reach `x` at all."""
    lo, seen, stack, found = G.index[x], {operand}, [operand], False
    while stack:
        n = stack.pop()
        for u in G.tensor_inputs(n):
            if u is x:
                found = True
            elif G.index[u] < lo or u.op == "placeholder":
                return None
            elif u not in seen:
                seen.add(u)
                stack.append(u)
    return sorted(seen, key=G.index.__getitem__) if found else None


def _residual(G: _Graph, n: fx.Node):
    """`(stream, projection, branch nodes, branch operand)` when `n` is a residual sum, else None."""
    a, b = n.args[:2]
    for skip, other in ((a, b), (b, a)):
        for x, projection in _skip_origins(G, skip):
            if x is other or G.index[x] >= G.index[other]:
                continue
            nodes = _branch(G, x, other)
            if nodes and any(G.is_wn(m) for m in nodes) and (projection is None or projection not in nodes):
                return x, projection, nodes, other
    return None


def _branch_end(G: _Graph, operand: fx.Node) -> fx.Node | None:
    """The WN layer whose output the branch adds: back from the operand through shape ops, scalings, activations."""
    n = operand
    while not G.is_wn(n):
        ins = G.tensor_inputs(n)
        if len(ins) != 1 or not (G.is_shape_op(n) or G.scalar_factor(n) is not None or G.activation(n)):
            return None
        n = ins[0]
    return n


def _approximations(G: _Graph, nodes: list[fx.Node]) -> tuple[str, ...]:
    found = []
    for n in nodes:
        m = G.module(n)
        if isinstance(m, _NORMS) or n.target in (F.layer_norm, F.group_norm, F.batch_norm):
            found.append(f"{type(m).__name__ if m is not None else n.target.__name__} (normalization)")
        elif isinstance(m, _MAX_POOLS + _AVG_POOLS) or n.target in ("mean", "amax", torch.mean):
            found.append("pooling")
        elif n.target in (torch.cat, torch.concat):
            found.append("concatenation")
        elif n.target in ("permute", "transpose", torch.permute, torch.transpose):
            found.append("a permutation of the feature axis")
    return tuple(dict.fromkeys(found))


def _stages(G: _Graph, sums: list[tuple]) -> tuple[list[tuple[int, int, int]], set[int]]:
    """`(stage, block, B_k)` per residual sum: chains whose stream is the previous sum's output; and the
    chains that continue through an activation (post-activation blocks: a ReLU after each sum)."""
    chain_of, position, lengths, post = {}, {}, [], set()
    for n, x, projection, *_ in sums:
        prev, through_act = x, False
        while prev not in chain_of and len(G.tensor_inputs(prev)) == 1 and (G.is_shape_op(prev) or G.activation(prev)):
            through_act = through_act or G.activation(prev) is not None
            prev = G.tensor_inputs(prev)[0]
        if projection is None and prev in chain_of:
            chain = chain_of[prev]
            if through_act:
                post.add(chain)
        else:
            chain = len(lengths)
            lengths.append(0)
        lengths[chain] += 1
        chain_of[n], position[n] = chain, lengths[chain]
    return [(chain_of[n] + 1, position[n], lengths[chain_of[n]]) for n, *_ in sums], {c + 1 for c in post}


LAYER_KINDS = ("wn", "any")


def discover(model: nn.Module, layers: str = "wn") -> Structure:
    """Trace `model` and give every WN layer its discovered role (docs/method.md §3.7).

    `layers="any"` treats every Linear/Conv layer, weight-normed or not, as a layer (the normalizer-free
    peers of [`wninit.peers`][] find the residual branches of plain networks this way); the default
    `"wn"` looks at weight-normed layers only.

    Raises:
        TraceFailure: torch.fx cannot trace the model.
    """
    if layers not in LAYER_KINDS:
        raise UserError(f"layers must be one of {', '.join(LAYER_KINDS)}, got {layers!r}")
    G = _Graph(model, trace(model), any_layer=layers == "any")
    found = [(n,) + r for n in G.nodes if G.is_sum(n) and (r := _residual(G, n)) is not None]
    stage_of, post_activation = _stages(G, found)
    sums, kind_of, where, outside_of = [], {}, {}, {}
    firsts = [f[1] for f, (_, block, _) in zip(found, stage_of) if block == 1]
    shared = {x for x in firsts if firsts.count(x) > 1}  # HiFi-GAN's multi-receptive-field fusion
    shared_stages = {st for f, (st, block, _) in zip(found, stage_of) if block == 1 and f[1] in shared}
    for (n, x, projection, nodes, operand), (stage, block, blocks) in zip(found, stage_of):
        end = _branch_end(G, operand)
        if end is None or end not in nodes:
            continue  # the branch ends in something that is not a WN layer: its sum adds what it adds
        info = dict(stage=stage, block=block, stage_blocks=blocks)
        for m in nodes:
            if G.is_wn(m) and m not in kind_of:
                kind_of[m], where[m] = ("block_out" if m is end else "block_in"), (info, n, operand)
        if projection is not None and projection not in kind_of:
            kind_of[projection], where[projection] = "shortcut", (info, n, operand)
        outside = _approximations(G, nodes) + (_after_sum(G, n) if stage in post_activation else ()) + _pooled(G, x) \
            + _leaks(nodes, n) + (("parallel stages share its input",) if stage in shared_stages else ())
        sums.append(ResidualSum(n.name, x.name, end.target, projection.target if projection is not None else None,
                                stage, block, blocks, outside))
        outside_of[n] = outside
    return _assign(G, sums, kind_of, where, outside_of)


def _leaks(nodes: list[fx.Node], sum_node: fx.Node) -> tuple[str, ...]:
    """A branch that also feeds another path (WaveNet's skip outputs): the gradient reaching the stream then
    comes from more than the residual sums, outside §3.4's backward analysis."""
    inside = set(nodes) | {sum_node}
    leaked = any(u not in inside for m in nodes for u in m.users)
    return ("the branch also feeds another path",) if leaked else ()


def _pooled(G: _Graph, x: fx.Node) -> tuple[str, ...]:
    """A stream that comes out of a max pool is not zero-mean, which §3.4's cross-term argument assumes."""
    while G.is_shape_op(x) and G.tensor_inputs(x):
        x = G.tensor_inputs(x)[0]
    pooled = isinstance(G.module(x), _MAX_POOLS) or x.target in (F.max_pool1d, F.max_pool2d, F.max_pool3d)
    return ("a max-pooled (non-zero-mean) stream",) if pooled else ()


def _after_sum(G: _Graph, n: fx.Node) -> tuple[str, ...]:
    """A post-activation block (ReLU after the sum, ResNet-50) is outside the §3.4 analysis: say so."""
    users = list(n.users)
    act = G.activation(users[0]) if len(users) == 1 else None
    return (f"{act.name} after the sum",) if act is not None else ("an activation after the sum",)


def _assign(G: _Graph, sums, kind_of, where, outside_of) -> Structure:
    from wninit.structure.energy import EnergyPass

    wn = [n for n in G.nodes if G.is_wn(n)]
    energy = EnergyPass(G, kind_of, where)
    roles, rules = {}, {}
    for i, n in enumerate(wn):
        kind = kind_of.get(n)
        follow, rule = energy.follow_factor(n)
        if kind is None:
            if follow != 1.0:
                kind = "hidden"
            else:
                kind = "stem" if i == 0 else ("head" if energy.reaches_output(n) else "linear")
        info = where[n][0] if n in where else {}
        ratio = energy.branch_ratio(n) if kind == "block_out" else None
        roles[n.target] = Role(kind, follow=follow, branch_ratio=ratio, **info)
        rules[n.target] = energy.rule(n, kind, rule, ratio)
        if kind == "block_out" and outside_of.get(where[n][1]):
            rules[n.target] += f"; outside the theory: {', '.join(outside_of[where[n][1]])}"
    return Structure(roles, rules, sums, G.model, G.graph, {n.target: n.name for n in wn},
                     {n.name: energy.energy(n)[0] for n in G.nodes})
