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

from dataclasses import dataclass, field

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from wninit.errors import UserError
from wninit.structure.activations import is_registered
from wninit.structure.graph import ATTENTION, AVG_POOLS, LAYERS, MAX_POOLS, MULS, NORMS, Graph
from wninit.structure.roles import Role

__all__ = ["Structure", "ResidualSum", "TraceFailure", "Graph", "discover", "trace", "TRACED_BY"]

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
    traced_by: str = "fx"  # one of TRACED_BY: symbolically, or by running an example input
    sum_nodes: dict[str, str] = field(default_factory=dict)  # branch-end layer name -> its sum's node name
    unknown: dict[str, str] = field(default_factory=dict)  # WN layer name -> the op after it of no known moment

    def graph_module(self) -> fx.GraphModule:
        """The traced graph as a runnable module (built on demand: code generation costs more than the trace);
        a graph recorded by running is no program: run the model itself (wninit.structure.record)."""
        if self.traced_by != TRACED_BY[0]:
            raise UserError("a graph recorded by running cannot be re-run as a module: record the model again")
        return fx.GraphModule(self.model, self.graph)

    def outside(self, layer: str) -> bool:
        """Whether the layer's rule is outside the theory (its energy is measured when an input is given)."""
        return "outside the theory" in self.rules.get(layer, "")


class _Tracer(fx.Tracer):
    """Every Linear/Conv (weight-normed by any API) and every torch.nn module is a leaf; user modules are inlined."""

    bug = False  # set when wninit's own predicate raised (a bug, not an untraceable model)

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        try:
            return isinstance(m, LAYERS) or is_registered(m) or super().is_leaf_module(m, qualname)
        except BaseException:
            self.bug = True
            raise


def trace(model: nn.Module) -> fx.Graph:
    """The model's graph; raises [`TraceFailure`][wninit.structure.trace.TraceFailure] with torch.fx's reason when it cannot be traced.

    Only what the model's code raises under symbolic tracing is a [`TraceFailure`][wninit.structure.trace.TraceFailure]; an error raised by
    wninit's own leaf predicate is a bug and propagates with its traceback.
    """
    tracer = _Tracer()
    try:
        return tracer.trace(model)
    except Exception as exc:  # fx raises TraceError, TypeError, NotImplementedError... on untraceable code
        if tracer.bug:
            raise
        raise TraceFailure(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:200]) from exc


def _skip_origins(G: Graph, n: fx.Node) -> list[tuple[fx.Node, fx.Node | None]]:
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


def _branch(G: Graph, x: fx.Node, operand: fx.Node) -> list[fx.Node] | None:
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


def _residual(G: Graph, n: fx.Node):
    """`(stream, projection, branch nodes, branch operand)` when `n` is a residual sum, else None."""
    a, b = G.operands(n)
    for skip, other in ((a, b), (b, a)):
        for x, projection in _skip_origins(G, skip):
            if x is other or G.index[x] >= G.index[other]:
                continue
            nodes = _branch(G, x, other)
            if nodes and any(G.is_wn(m) for m in nodes) and (projection is None or projection not in nodes):
                return x, projection, nodes, other
    return None


def _mixed_branch(G: Graph, n: fx.Node) -> list[fx.Node]:
    """For a sum that is no residual sum: the WN layers of an operand computed from the other operand's stream
    through at least one WN layer and from another input too (UnivNet's location-variable convolution, whose
    kernel is predicted from the spectrogram): a branch the residual analysis does not cover. Else []."""
    a, b = G.operands(n)
    if not (isinstance(a, fx.Node) and isinstance(b, fx.Node)):
        return []
    for skip, other in ((a, b), (b, a)):
        for x, _ in _skip_origins(G, skip):
            if x is other or G.index[x] >= G.index[other] or _branch(G, x, other) is not None:
                continue
            lo, on_path, stack = G.index[x], set(), [other]
            while stack:  # the ancestors of the operand computed from x
                m = stack.pop()
                if m in on_path or G.index[m] <= lo:
                    continue
                on_path.add(m)
                stack.extend(G.tensor_inputs(m))
            from_x = _descendants(x, on_path)
            layers = [m for m in sorted(from_x, key=G.index.__getitem__) if G.is_wn(m)]
            if layers:
                return layers
    return []


def _descendants(x: fx.Node, within: set) -> set:
    """The nodes of `within` computed from `x`."""
    found, stack = set(), [x]
    while stack:
        for u in stack.pop().users:
            if u in within and u not in found:
                found.add(u)
                stack.append(u)
    return found


def _branch_end(G: Graph, operand: fx.Node) -> fx.Node | None:
    """The WN layer whose output the branch adds: back from the operand through shape ops, scalings, activations."""
    n = operand
    while not G.is_wn(n):
        if G.drop_mask(n) is not None:
            n = G.drop_mask(n)
            continue
        ins = G.tensor_inputs(n)
        if len(ins) != 1 or not (G.is_shape_op(n) or G.scalar_factor(n) is not None or G.activation(n)
                                 or G.param_scale(n) is not None):
            return None
        n = ins[0]
    return n


def _approximations(G: Graph, nodes: list[fx.Node]) -> tuple[str, ...]:
    found = []
    for n in nodes:
        m = G.module(n)
        if isinstance(m, NORMS) or n.target in (F.layer_norm, F.group_norm, F.batch_norm):
            found.append(f"{type(m).__name__ if m is not None else n.target.__name__} (normalization)")
        elif isinstance(m, MAX_POOLS + AVG_POOLS) or n.target in ("mean", "amax", torch.mean):
            found.append("pooling")
        elif n.target in (torch.cat, torch.concat):
            found.append("concatenation")
        elif isinstance(m, nn.MultiheadAttention) or n.target in ATTENTION:
            found.append("attention")
        elif n.target in MULS and len(G.tensor_inputs(n)) == 2:
            found.append("a multiplicative gate")
        elif n.target in ("permute", "transpose", torch.permute, torch.transpose):
            found.append("a permutation of the feature axis")
    return tuple(dict.fromkeys(found))


def _stages(G: Graph, sums: list[tuple]) -> tuple[list[tuple[int, int, int]], set[int]]:
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
TRACED_BY = ("fx", "by running")


def discover(model: nn.Module, layers: str = "wn", *, example_inputs=None) -> Structure:
    """Trace `model` and give every WN layer its discovered role (docs/method.md §3.7, §3.9).

    `layers="any"` treats every Linear/Conv layer, weight-normed or not, as a layer (the normalizer-free
    peers of [`wninit.peers`][] find the residual branches of plain networks this way); the default
    `"wn"` looks at weight-normed layers only. With `example_inputs` (a tensor, a tuple of positional
    arguments or a dict of keyword arguments) the graph is the dataflow of one real forward pass
    (`wninit.structure.record.record`), so models torch.fx cannot trace are discovered too.

    Raises:
        TraceFailure: no `example_inputs` and torch.fx cannot trace the model.
    """
    if layers not in LAYER_KINDS:
        raise UserError(f"layers must be one of {', '.join(LAYER_KINDS)}, got {layers!r}")
    if example_inputs is None:
        graph, how = trace(model), TRACED_BY[0]
    else:
        from wninit.structure.record import record

        graph, how = record(model, example_inputs).graph, TRACED_BY[1]
    from wninit.structure.record import gc_paused

    with gc_paused():  # the analysis makes many small objects too (the energy pass, the roles)
        G = Graph(model, graph, any_layer=layers == "any")
        structure = _analyse(G)
    structure.traced_by = how
    return structure


MIXED = "in a branch that also reads another input (its sum is no residual sum of the stream alone)"


def _analyse(G: Graph) -> Structure:
    found, mixed = [], {}
    for n in G.nodes:
        if G.is_sum(n):
            if (r := _residual(G, n)) is not None:
                found.append((n,) + r)
            else:
                mixed.update(dict.fromkeys(_mixed_branch(G, n), MIXED))
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
    return _assign(G, sums, kind_of, where, outside_of, mixed)


def _leaks(nodes: list[fx.Node], sum_node: fx.Node) -> tuple[str, ...]:
    """A branch that also feeds another path (WaveNet's skip outputs): the gradient reaching the stream then
    comes from more than the residual sums, outside §3.4's backward analysis."""
    inside = set(nodes) | {sum_node}
    leaked = any(u not in inside for m in nodes for u in m.users)
    return (LEAK,) if leaked else ()


LEAK = "the branch also feeds another path"


def _pooled(G: Graph, x: fx.Node) -> tuple[str, ...]:
    """A stream that comes out of a max pool is not zero-mean, which §3.4's cross-term argument assumes."""
    while G.is_shape_op(x) and G.tensor_inputs(x):
        x = G.tensor_inputs(x)[0]
    pooled = isinstance(G.module(x), MAX_POOLS) or x.target in (F.max_pool1d, F.max_pool2d, F.max_pool3d)
    return ("a max-pooled (non-zero-mean) stream",) if pooled else ()


def _after_sum(G: Graph, n: fx.Node) -> tuple[str, ...]:
    """A post-activation block (ReLU after the sum, ResNet-50) is outside the §3.4 analysis: say so."""
    users = list(n.users)
    act = G.activation(users[0]) if len(users) == 1 else None
    return (f"{act.name} after the sum",) if act is not None else ("an activation after the sum",)


def _assign(G: Graph, sums, kind_of, where, outside_of, mixed: dict) -> Structure:
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
        outside = list(outside_of.get(where[n][1], ())) if kind == "block_out" else []
        if n in mixed and n not in kind_of:
            outside.append(mixed[n])
        if n in energy.unknown and kind == "block_out":
            outside.append(f"{energy.unknown[n]} follows (no known second moment, taken as 1)")
        if outside:
            said = "outside the theory" in rules[n.target]  # an unknown follower's rule says it already
            rules[n.target] += ("; " if said else "; outside the theory: ") + ", ".join(outside)
    ends = {s.branch_end: s.node for s in sums}
    return Structure(roles, rules, sums, G.model, G.graph, {n.target: n.name for n in wn},
                     {n.name: energy.energy(n)[0] for n in G.nodes}, sum_nodes=ends,
                     unknown={n.target: op for n, op in energy.unknown.items()})
