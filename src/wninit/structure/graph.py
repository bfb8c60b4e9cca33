"""A traced or recorded model graph with the lookups the structure analysis needs: which node is a WN layer,
an activation, a shape op, a scaling, a sum (docs/method.md §3.7, §3.9). The peers ([`wninit.peers`][]) read
the same graph through this class.
"""
from __future__ import annotations

import operator

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from wninit.structure.activations import Activation, activation_of_call, activation_of_module
from wninit.weightnorm.access import is_weight_normed

__all__ = ["Graph"]

LAYERS = (nn.Linear, nn.modules.conv._ConvNd)
SHAPE_METHODS = {"view", "reshape", "flatten", "permute", "transpose", "contiguous", "squeeze", "unsqueeze",
                  "clone", "to", "float", "double", "half", "bfloat16", "type_as", "expand_as", "unflatten", "narrow"}
SHAPE_FUNCS = {torch.flatten, torch.reshape, torch.permute, torch.transpose, torch.squeeze, torch.unsqueeze,
                torch.clone, F.dropout, F.dropout1d, F.dropout2d, F.dropout3d, F.pad, F.interpolate, torch.narrow}
SHAPE_MODULES = (nn.Identity, nn.Flatten, nn.Unflatten, nn.modules.dropout._DropoutNd, nn.Upsample,
                  nn.ZeroPad1d, nn.ZeroPad2d, nn.ZeroPad3d, nn.ConstantPad1d, nn.ConstantPad2d, nn.ConstantPad3d,
                  nn.ReflectionPad1d, nn.ReflectionPad2d, nn.ReplicationPad1d, nn.ReplicationPad2d)
MAX_POOLS = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d)
AVG_POOLS = (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d,
              nn.AdaptiveAvgPool3d)
NORMS = (nn.LayerNorm, nn.GroupNorm, nn.modules.batchnorm._BatchNorm, nn.modules.instancenorm._InstanceNorm,
          nn.LocalResponseNorm, nn.RMSNorm)
ADDS = {operator.add, operator.iadd, torch.add, "add", "add_"}
MULS = {operator.mul, operator.imul, torch.mul, "mul", "mul_"}
DIVS = {operator.truediv, operator.itruediv, torch.div, "div", "div_"}
CATS = {torch.cat, torch.concat}
_RANDOM = {"bernoulli_", "bernoulli", torch.bernoulli, "uniform_", torch.rand, torch.rand_like}
ATTENTION = {F.scaled_dot_product_attention, F.softmax, torch.softmax, "softmax", torch.matmul, operator.matmul,
              torch.bmm, torch.einsum}
NORM_CALLS = {F.layer_norm, F.group_norm, F.batch_norm, F.instance_norm, F.rms_norm, F.normalize, F.local_response_norm}
POOL_CALLS = {"mean", "amax", "sum", "max", torch.mean, torch.amax, torch.sum, torch.max, F.avg_pool1d, F.avg_pool2d,
              F.avg_pool3d, F.max_pool1d, F.max_pool2d, F.max_pool3d, F.adaptive_avg_pool1d, F.adaptive_avg_pool2d,
              F.adaptive_avg_pool3d, F.adaptive_max_pool1d, F.adaptive_max_pool2d}
SUBS = {operator.sub, operator.isub, torch.sub, "sub", "sub_"}
CHUNKS = {"chunk", "split", torch.chunk, torch.split, "unbind", torch.unbind}
# calls that read only a tensor's shape, dtype or device, not its values
QUERIES = {"size", "dim", "numel", getattr, "detach", "requires_grad_", torch.zeros_like, torch.ones_like,
           torch.empty_like, torch.full_like, "new_zeros", "new_ones", "new_empty", "new_full"}



class Graph:
    """A traced or recorded graph with the lookups the analysis needs (the peers read it too)."""

    def __init__(self, model: nn.Module, graph: fx.Graph, any_layer: bool = False):
        self.model, self.graph, self.any_layer = model, graph, any_layer
        self.nodes = list(graph.nodes)
        self.index = {n: i for i, n in enumerate(self.nodes)}
        self.modules = dict(model.named_modules())

    def module(self, n: fx.Node) -> nn.Module | None:
        return self.modules.get(n.target) if n.op == "call_module" else None

    def is_wn(self, n: fx.Node) -> bool:
        m = self.module(n)
        return m is not None and isinstance(m, LAYERS) and (self.any_layer or is_weight_normed(m))

    def activation(self, n: fx.Node) -> Activation | None:
        if n.op == "call_module":
            return activation_of_module(self.module(n))
        if n.op in ("call_function", "call_method"):
            return activation_of_call(n.target, n.args[1:] if n.op == "call_method" else n.args[1:], n.kwargs)
        return None

    def understood(self, n: fx.Node) -> bool:
        """Whether the energy analysis knows what node `n` does to the energy it receives: a layer, a sum, a
        difference or a concatenation, a known activation, a shape op, a scaling, a product (a gate), attention,
        a normalization, pooling, chunking, the output, or a torch.nn module (docs/method.md §3.7). Anything
        else (`sin`, `exp`, `pow`, a module of another package) is an op with no known second moment."""
        if n.op in ("output", "placeholder", "get_attr"):
            return True
        if n.op == "call_module":
            m = self.module(n)
            return m is None or isinstance(m, LAYERS) or type(m).__module__.startswith("torch.nn") \
                or activation_of_module(m) is not None
        t = n.target
        try:
            known = t in ADDS or t in SUBS or t in MULS or t in DIVS or t in CATS or t in ATTENTION or t in NORM_CALLS \
                or t in POOL_CALLS or t in CHUNKS or t in QUERIES or t is operator.getitem
        except TypeError:  # an unhashable target
            known = False
        return known or self.is_shape_op(n) or self.activation(n) is not None

    def op_name(self, n: fx.Node) -> str:
        """A node's op as a user reads it: `torch.sin`, `Tensor.pow`, or a module's class and name."""
        if n.op == "call_module":
            return f"{type(self.module(n)).__name__} ({n.target})"
        if n.op == "call_method":
            return f"Tensor.{n.target}"
        module = getattr(n.target, "__module__", None) or ""
        name = getattr(n.target, "__name__", str(n.target))
        return f"torch.{name}" if module.startswith("torch") and not module.startswith("torch.nn") else name

    def tensor_inputs(self, n: fx.Node) -> list[fx.Node]:
        return [a for a in n.all_input_nodes if a.op != "get_attr"]

    def is_shape_op(self, n: fx.Node) -> bool:
        if n.op == "call_module":
            return isinstance(self.module(n), SHAPE_MODULES)
        if n.op == "call_method":
            return n.target in SHAPE_METHODS
        if n.op == "call_function":
            if n.target is operator.getitem:  # slicing a tensor; an item of a chunk is scaled in _energy
                return n.args[0].op != "call_method" or n.args[0].target not in ("chunk", "split")
            return n.target in SHAPE_FUNCS
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
        if n.target in MULS:
            return float(b) ** 2
        if n.target in DIVS and b != 0:
            return 1.0 / float(b) ** 2
        return None

    def param_scale(self, n: fx.Node) -> float | None:
        """The mean square of `p` for `x * p` with `p` a parameter or buffer of the model (layer scale,
        ReZero/SkipInit alphas: docs/method.md §3.9), else None."""
        if n.op not in ("call_function", "call_method") or n.target not in MULS or len(self.tensor_inputs(n)) != 1:
            return None
        attrs = [a for a in n.args[:2] if isinstance(a, fx.Node) and a.op == "get_attr"]
        if len(attrs) != 1:
            return None
        value = self.attribute(attrs[0].target)
        return None if value is None else float(value.detach().double().square().mean())

    def attribute(self, target: str) -> torch.Tensor | None:
        for get in (self.model.get_parameter, self.model.get_buffer):
            try:
                return get(target)
            except (AttributeError, TypeError):
                continue
        return None

    def drop_mask(self, n: fx.Node) -> fx.Node | None:
        """For `x * mask` with a random 0/1 mask (stochastic depth, drop path, in train mode), `x`; else None.

        The mask is the identity in eval mode, where the init's target is defined (docs/method.md §3.9)."""
        if n.op not in ("call_function", "call_method") or n.target not in MULS:
            return None
        ins = self.tensor_inputs(n)
        if len(ins) != 2:
            return None
        for x, m in ((ins[0], ins[1]), (ins[1], ins[0])):
            seen, steps = m, 0
            while steps < 4 and isinstance(seen, fx.Node):
                if seen.target in _RANDOM:
                    return x
                seen = seen.args[0] if seen.args and isinstance(seen.args[0], fx.Node) else None
                steps += 1
        return None

    def operands(self, n: fx.Node) -> tuple:
        """The two operands of a sum, or of a concatenation along the feature axis (a sum of two orthogonal
        subspaces: each position's energy is the sum of the parts', docs/method.md §3.9)."""
        if n.target in CATS:
            return tuple(n.args[0]) if isinstance(n.args[0], (list, tuple)) else ()
        return tuple(n.args[:2])

    def is_sum(self, n: fx.Node) -> bool:
        if n.op == "call_function" and n.target in CATS:
            parts = n.args[0] if n.args else None
            dim = n.args[1] if len(n.args) > 1 else n.kwargs.get("dim", 0)
            return isinstance(parts, (list, tuple)) and len(parts) == 2 and dim in (1, -1) \
                and all(isinstance(a, fx.Node) and a.op != "get_attr" for a in parts) and parts[0] is not parts[1]
        return n.op in ("call_function", "call_method") and n.target in ADDS and len(self.tensor_inputs(n)) == 2 \
            and all(isinstance(a, fx.Node) for a in n.args[:2])
