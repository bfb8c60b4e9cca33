"""Measuring points of any model from structure discovery: no marking needed (docs/method.md §3.7, §7.1).

The points are nodes of the model's traced graph, so a block that returns a tuple is followed along the
tensor that continues the stream. For every WN layer outside residual branches: what it passes on (the
output of the activation after it, or its own output); for every stage of residual sums: the stream entering
it and each sum. Each is named after the model's own modules: a layer by its name (`conv_pre`), a stage's
input by the module that makes it (`ups.0`, `stages.1.0/relu`), a sum by the module it is computed in (`blocks.3`, or
`resblocks.0/sum2` for the second of several in one module). One point per node (parallel stages that share
their input share its point), in the graph's order, which is the data's. Each point carries its channel axis
(1 after a conv, the last after a Linear), so per-position norms are taken over the right axis.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace

import torch
import torch.fx as fx
from torch import nn

__all__ = ["GraphPoint", "graph_points", "run_recording"]


@dataclass(frozen=True)
class GraphPoint:
    name: str
    node: str
    channel_axis: int  # in the full (N, ...) tensor
    stage: int | None = None
    block: int | None = None  # 0 for a stage's input


def _axis(module: nn.Module) -> int:
    return -1 if isinstance(module, nn.Linear) else 1


def graph_points(model: nn.Module, example_inputs=None):
    """`(graph module, points)` from [`wninit.structure.trace.discover`][], in graph order; with
    `example_inputs` the graph is recorded by running (docs/method.md §3.9) and the graph module is None:
    `run_recording` then records the model again."""
    from wninit.structure.trace import discover

    s = discover(model, example_inputs=example_inputs)
    gm = s.graph_module() if example_inputs is None else None
    graph = gm.graph if gm is not None else s.graph
    nodes = {n.name: n for n in graph.nodes}
    modules = dict(model.named_modules())
    order = {n.name: i for i, n in enumerate(graph.nodes)}
    points: dict[str, GraphPoint] = {}  # node -> its one point
    for name, role in s.roles.items():
        if role.kind in ("block_in", "block_out", "shortcut"):
            continue
        passed = _passed_on(nodes[s.layer_nodes[name]], modules)
        points.setdefault(passed.name, GraphPoint(name, passed.name, _axis(modules[name])))
    sums = sorted(s.sums, key=lambda r: order[r.node])
    per_module = Counter(_module_of(nodes[r.node]) for r in sums)
    numbered: Counter = Counter()
    for r in sums:
        axis = _axis(modules[r.branch_end])
        if r.block == 1:
            points.setdefault(r.stream, GraphPoint(_made_by(nodes[r.stream]), r.stream, axis, r.stage, 0))
        home = _module_of(nodes[r.node])
        numbered[home] += 1
        name = home if per_module[home] == 1 else f"{home}/sum{numbered[home]}".lstrip("/")  # the model's own: sum1
        points.setdefault(r.node, GraphPoint(name or r.node, r.node, axis, r.stage, r.block))
    ordered, seen = [], Counter()
    for p in sorted(points.values(), key=lambda p: order[p.node]):  # a name twice: the second gets "#2"
        seen[p.name] += 1
        ordered.append(p if seen[p.name] == 1 else replace(p, name=f"{p.name}#{seen[p.name]}"))
    return gm, ordered


def _module_of(node: fx.Node) -> str:
    """The innermost module of the model whose forward computes `node` ("" at the top level)."""
    stack = list(node.meta.get("nn_module_stack", {}).values())
    if not stack:
        return ""
    last = stack[-1]
    return last[0] if isinstance(last, tuple) else str(last)


def _made_by(node: fx.Node) -> str:
    """A stream's name: the module that outputs it (`ups.0`), else the function that computes it in the module
    it is computed in (`stages.1.0/relu`), else its node's name (the model's input `x`)."""
    if node.op == "call_module":
        return str(node.target)
    home = _module_of(node)
    if node.op in ("call_function", "call_method") and home:
        return f"{home}/{getattr(node.target, '__name__', node.target)}"
    return node.name


def _passed_on(node: fx.Node, modules: dict) -> fx.Node:
    """The node after a layer's activation when one single-use chain leads to it, else the layer's own output."""
    from wninit.structure.activations import activation_of_call, activation_of_module

    cur, steps = node, 0
    while len(cur.users) == 1 and steps < 4:
        u = next(iter(cur.users))
        mod = modules.get(u.target) if u.op == "call_module" else None
        if (mod is not None and activation_of_module(mod)) or \
                (u.op != "call_module" and activation_of_call(u.target, u.args[1:], u.kwargs)):
            return u
        if u.op == "call_module" or u.op == "output":
            break
        cur, steps = u, steps + 1
    return node


class _Recorder(fx.Interpreter):
    def __init__(self, gm: fx.GraphModule, wanted: set[str]):
        super().__init__(gm)
        self.wanted, self.seen = wanted, {}

    def run_node(self, n: fx.Node):
        out = super().run_node(n)
        if n.name in self.wanted and isinstance(out, torch.Tensor):
            self.seen[n.name] = out
        return out


def run_recording(gm: fx.GraphModule | None, points: list[GraphPoint], x, model: nn.Module | None = None):
    """Run the graph on `x`; `(output, {node name: tensor})` for the points' nodes. Without a graph module
    (a graph recorded by running) the model itself runs under the recorder, with gradients."""
    if gm is None:
        from wninit.structure.record import record

        recording = record(model, x, keep={p.node for p in points}, grad=True)
        return recording.output, recording.kept
    rec = _Recorder(gm, {p.node for p in points})
    out = rec.run(x)
    return out, rec.seen
