"""The energy pass of structure discovery: expected squared norm per position through a traced graph.

Energies are relative (the model input has 1) and per position (summed over channels), the quantity the
proposed gains preserve (docs/method.md §3.1, §3.7). The pass assumes the proposed init: a WN layer followed
by a factor `f` (what its output loses or gains before the next layer: an activation's second moment, a
chunk's share) gets `gamma = 1/f`; a residual branch's last layer adds `1/B_k` of its stream's energy.
Each op's factor:

- activation `phi`: `E[phi(z)^2]` for a zero-mean input; for a non-negative input (after a ReLU, a max
  pool) the moment over `|z|`, mixed by the share of the energy that is non-negative;
- sum of two tensors: the sum of their energies (independent random directions: the cross term is 0 in
  expectation, §3.4); `x * c`: `c**2`; a chunk into k parts: `1/k` each;
- a gate `phi_a(a) * psi(b)` with `psi` non-negative (sigmoid): `E[psi(z)^2]` times `a`'s energy;
- shape ops, dropout, padding, pooling, normalization layers, concatenation: 1 (assumed; pooling and
  normalization are reported as outside the theory where they sit inside a residual branch).
"""
from __future__ import annotations

import operator

import torch
import torch.fx as fx

from wninit.structure.graph import CHUNKS, MULS

__all__ = ["EnergyPass"]

SELF_PRODUCT = "a product of its output with a function of itself"


class EnergyPass:
    """Energies of every node of a traced graph under the proposed init (see the module docstring)."""

    def __init__(self, G, kind_of: dict, where: dict):
        self.G, self.kind_of, self.where = G, kind_of, where
        self._follow: dict[fx.Node, tuple[float, str | None]] = {}
        # WN layer -> the op after it with no known second moment (docs/method.md §3.7): its factor is taken as
        # 1 and the layer is named in its rule and a warning, never silently
        self.unknown: dict[fx.Node, str] = {}
        self._energy: dict[fx.Node, tuple[float, float]] = {}  # node -> (energy, share that is non-negative)
        self._downstream_wn = self._wn_downstream()
        for n in G.nodes:
            self.energy(n)

    # -- what follows a layer -------------------------------------------------------------------------------
    def follow_factor(self, n: fx.Node) -> tuple[float, str | None]:
        """`(f, name)`: the energy factor between WN layer `n`'s output and what it passes on."""
        if n not in self._follow:
            self._follow[n] = self._walk_follow(n)
        return self._follow[n]

    def _walk_follow(self, n: fx.Node) -> tuple[float, str | None]:
        G, f, cur = self.G, 1.0, n
        while True:
            users = list(cur.users)
            if len(users) != 1:
                self._note_unknown(n, cur)
                return f, None
            u = users[0]
            if self._chunk_parts(u):
                f /= self._chunk_parts(u)
                items = list(u.users)
                if not items:
                    return f, None
                cur = items[0]
                continue
            c = G.scalar_factor(u)
            if G.is_shape_op(u) or c is not None or G.param_scale(u) is not None or G.drop_mask(u) is cur:  # the model's own scale: not the layer's
                f *= c if c is not None else 1.0
                cur = u
                continue
            act = G.activation(u)
            if act is None:
                self._note_unknown(n, cur)
                return f, None
            f *= act.second_moment()
            gate = self._gate_partner(u)
            if gate is not None:
                if gate.nonnegative and not act.nonnegative:
                    return f * gate.second_moment(), f"{act.name}*{gate.name} gate"
                return 1.0, f"{act.name} gate input"
            return f, act.name

    def _note_unknown(self, layer: fx.Node, start: fx.Node) -> None:
        """Record in `unknown` the first op after `start` (through shape ops and scalings, over every path)
        that the pass has no factor for: an op outside `Graph.understood`, or a product of the output with an
        elementwise function of itself (a self-gated activation written as ops, `x * sigmoid(b x)`)."""
        G, flow, seen, stack = self.G, {start}, {start}, [start]
        while stack:
            for u in stack.pop().users:
                if u in seen:
                    continue
                seen.add(u)
                if G.is_shape_op(u) or G.scalar_factor(u) is not None or G.param_scale(u) is not None:
                    flow.add(u)
                    stack.append(u)
                elif not G.understood(u):
                    self.unknown[layer] = G.op_name(u)
                    return
                elif u.target in MULS and len(G.tensor_inputs(u)) == 2 \
                        and all(self._elementwise_of(a, flow) for a in G.tensor_inputs(u)):
                    self.unknown[layer] = SELF_PRODUCT
                    return

    def _elementwise_of(self, n: fx.Node, flow: set) -> bool:
        """Whether `n` is computed from a node of `flow` through single-input activations, shape ops and
        scalings only (no layer, no other tensor)."""
        G = self.G
        while n not in flow:
            ins = G.tensor_inputs(n)
            if len(ins) != 1 or G.is_wn(n) or not (G.activation(n) is not None or G.is_shape_op(n)
                                                    or G.scalar_factor(n) is not None or G.param_scale(n) is not None):
                return False
            n = ins[0]
        return True

    def _chunk_parts(self, n: fx.Node) -> int:
        if n.target not in CHUNKS or len(n.args) < 2 or not isinstance(n.args[1], int):
            return 0
        if n.target in ("chunk", torch.chunk):
            return n.args[1]
        return 0

    def _gate_partner(self, act_node: fx.Node):
        """The activation on the other side of a product `act(a) * other(b)`, or None."""
        users = list(act_node.users)
        if len(users) != 1 or users[0].target not in (operator.mul, torch.mul, "mul"):
            return None
        others = [a for a in self.G.tensor_inputs(users[0]) if a is not act_node]
        return self.G.activation(others[0]) if len(others) == 1 else None

    # -- energies ----------------------------------------------------------------------------------------------
    def energy(self, n: fx.Node) -> tuple[float, float]:
        """`(energy, non-negative share)` of node `n` (memoized; ancestors first)."""
        if n not in self._energy:
            self._energy[n] = self._compute(n)
        return self._energy[n]

    def _compute(self, n: fx.Node) -> tuple[float, float]:
        G = self.G
        ins = G.tensor_inputs(n)
        if n.op == "placeholder" or not ins:
            return 1.0, 0.0
        e, pos = self.energy(ins[0])
        if G.is_wn(n):
            if self.kind_of.get(n) == "block_out":
                return self._skip_energy(n) / (self.where[n][0]["stage_blocks"] * self.follow_factor(n)[0]), 0.0
            return e / self.follow_factor(n)[0], 0.0
        act = G.activation(n)
        if act is not None:
            m = pos * act.second_moment(True) + (1 - pos) * act.second_moment()
            return e * m, (1.0 if act.nonnegative else 0.0)
        if n.op == "call_function" and n.target is operator.getitem and self._chunk_parts(ins[0]):
            return e / self._chunk_parts(ins[0]), pos
        c = G.scalar_factor(n)
        if c is None:
            c = G.param_scale(n)
        if c is not None:
            return e * c, pos
        if len(ins) == 2 and (G.is_sum(n) or n.target in (torch.cat, torch.concat)):
            (ea, pa), (eb, pb) = self.energy(ins[0]), self.energy(ins[1])
            return ea + eb, (pa * ea + pb * eb) / (ea + eb) if ea + eb > 0 else 0.0
        if G.drop_mask(n) is not None:  # stochastic depth: the identity in eval mode
            return self.energy(G.drop_mask(n))
        if len(ins) == 2 and n.target in (operator.mul, torch.mul, "mul"):
            acts = [G.activation(a) for a in ins]
            for i in (0, 1):
                if acts[i] is not None and acts[i].nonnegative:  # the gate: its unit-input moment
                    return self.energy(ins[1 - i])[0] * acts[i].second_moment(), pos
            return e * self.energy(ins[1])[0], 0.0
        if G.module(n) is not None and type(G.module(n)).__name__.startswith("MaxPool"):
            return e, 1.0
        return e, pos

    def _skip_energy(self, layer: fx.Node) -> float:
        """Energy of the skip operand of the residual sum whose branch `layer` ends."""
        _, sum_node, operand = self.where[layer]
        a, b = self.G.operands(sum_node)
        return self.energy(b if a is operand else a)[0]

    def branch_ratio(self, layer: fx.Node) -> float:
        """`r`: energy reaching the branch-end `layer` (times what follows it) over its stream's at the sum.

        1 for the paper's block (ReLU between two convs, §3.4), 1/2 for a pre-activation block.
        """
        return self.energy(layer.args[0])[0] * self.follow_factor(layer)[0] / self._skip_energy(layer)

    # -- where a layer sits ------------------------------------------------------------------------------------
    def _wn_downstream(self) -> dict[fx.Node, bool]:
        down: dict[fx.Node, bool] = {}
        for n in reversed(self.G.nodes):
            down[n] = any(down[u] or self.G.is_wn(u) for u in n.users)
        return down

    def reaches_output(self, n: fx.Node) -> bool:
        """True when no WN layer is computed from `n`'s output (the model's last WN layer on its path)."""
        return not self._downstream_wn[n]

    def rule(self, n: fx.Node, kind: str, follower: str | None, ratio: float | None) -> str:
        """The explain table's rule for WN layer `n`."""
        if kind == "block_out":
            return f"branch end: 1/(B_k*r), r={ratio:.4g}"
        if kind == "shortcut":
            return "skip projection: nothing follows"
        if follower is None:
            if n in self.unknown:  # docs/method.md §3.7: never a silent "nothing follows"
                return f"{self.unknown[n]} follows: no known second moment, taken as 1 (outside the theory)"
            return "nothing follows"
        return f"{follower} follows: 1/E[phi(z)^2]" if "gate" not in follower else follower
