"""Measuring points of any model from structure discovery: no marking needed (docs/method.md §3.7, §7.1).

The points are nodes of the model's traced graph, so a block that returns a tuple is followed along the
tensor that continues the stream. For every stage of residual sums: the stream entering it (`s<k>.in`) and
each block's output (`s<k>.b<j>`); for every WN layer outside residual branches: what it passes on (the
output of the activation after it, or its own output), named after the layer. Each point carries its channel
axis (1 after a conv, the last after a Linear), so per-position norms are taken over the right axis.
"""
from __future__ import annotations

from dataclasses import dataclass

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
    points: dict[tuple[str, str], GraphPoint] = {}  # (node, name): parallel stages may share their input node
    for r in s.sums:
        axis = _axis(modules[r.branch_end])
        if r.block == 1:
            points[(r.stream, f"s{r.stage}.in")] = GraphPoint(f"s{r.stage}.in", r.stream, axis, r.stage, 0)
        points[(r.node, "")] = GraphPoint(f"s{r.stage}.b{r.block}", r.node, axis, r.stage, r.block)
    measured = {p.node for p in points.values()}
    for name, role in s.roles.items():
        if role.kind in ("block_in", "block_out", "shortcut"):
            continue
        passed = _passed_on(nodes[s.layer_nodes[name]], modules)
        if passed.name not in measured:
            measured.add(passed.name)
            points[(passed.name, "")] = GraphPoint(name, passed.name, _axis(modules[name]))
    order = {n.name: i for i, n in enumerate(graph.nodes)}
    return gm, sorted(points.values(), key=lambda p: (order[p.node], p.block or 0))


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
