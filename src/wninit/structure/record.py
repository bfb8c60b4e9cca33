"""Trace by running: the dataflow of one real forward pass, as a torch.fx graph (docs/method.md §3.9).

`torch.fx` traces symbolically and fails on Python control flow, `len`, shape arithmetic and item
assignment, which audio models and most packaged models use. Given an example input, `record` runs the
model once under a `torch.overrides.TorchFunctionMode` and writes every torch call whose inputs are
tensors it has seen into a `torch.fx.Graph`, keyed on tensor identity; module boundaries come from the
model's leaf modules (a Linear/Conv, a torch.nn activation or normalization), whose `forward` is wrapped for
the recording, so each is one `call_module` node, as under fx; a module built inside the forward is no module
of the model, and its torch calls are recorded like the forward's own. The mode is off while a leaf runs: the torch calls inside
it, most of a forward's, cost nothing more than they do without the recorder (docs/performance.md). The analysis of `wninit.structure.trace` then reads the recorded
graph exactly as a symbolic one: tensor methods are `call_method` nodes, torch functions `call_function`
nodes, parameters and tensors created inside the forward `get_attr` nodes.

`nn.MultiheadAttention` reads its output projection's weight without calling it: the recorder writes the
attention as one node followed by a `call_module` node of `out_proj`, so a weight-normed output projection
is a layer like any other (the branch end of an attention block).

The recording runs in eval mode (dropout and stochastic depth are the identity there, BatchNorm uses its
running statistics) without gradients, and restores the modes and the leaves' `forward` whatever the forward
raises. A forward that draws random numbers (VITS's noise, a sampling quantizer) draws them from a fork of the
global stream: every recording of the same model and input sees the same draw (the discovery pass and the
measuring pass of §3.10 are one input), and the caller's stream is left as it was.
"""
from __future__ import annotations

import contextlib
import dataclasses
import gc
import operator
from typing import Any, Callable

import torch
import torch.fx as fx
from torch import nn
from torch.overrides import TorchFunctionMode

from wninit.errors import UserError

__all__ = ["ExampleCall", "example_call", "record", "Recording"]

_LAYERS = (nn.Linear, nn.modules.conv._ConvNd)
_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)
_DUNDER_FUNCS = {"__getitem__": operator.getitem, "__add__": operator.add, "__radd__": operator.add,
                 "__iadd__": operator.iadd, "__mul__": operator.mul, "__rmul__": operator.mul,
                 "__imul__": operator.imul, "__truediv__": operator.truediv, "__itruediv__": operator.itruediv,
                 "__matmul__": operator.matmul, "__sub__": operator.sub, "__neg__": operator.neg}


@dataclasses.dataclass(frozen=True)
class ExampleCall:
    """How to call the model on the example input: `model(*args, **kwargs)`."""
    args: tuple
    kwargs: dict

    def __call__(self, model: nn.Module):
        return model(*self.args, **self.kwargs)

    def tensors(self) -> list[torch.Tensor]:
        return _flat_tensors((self.args, self.kwargs))


def example_call(example_inputs) -> ExampleCall:
    """`example_inputs` as a call: a tensor is one positional argument, a tuple the positional arguments,
    a dict the keyword arguments (`input_values=...`)."""
    if isinstance(example_inputs, ExampleCall):
        return example_inputs
    if isinstance(example_inputs, torch.Tensor):
        call = ExampleCall((example_inputs,), {})
    elif isinstance(example_inputs, (tuple, list)):
        call = ExampleCall(tuple(example_inputs), {})
    elif isinstance(example_inputs, dict):
        call = ExampleCall((), dict(example_inputs))
    else:
        raise UserError(f"example_inputs must be a tensor, a tuple of positional arguments or a dict of keyword "
                        f"arguments, got a {type(example_inputs).__name__}")
    if not call.tensors():
        raise UserError("example_inputs holds no tensor: pass a batch the model accepts, e.g. torch.randn(2, 3, 32, 32)")
    return call


def _flat_tensors(obj) -> list[torch.Tensor]:
    """The tensors in `obj`: tensors, tuples, lists, dicts (HF's ModelOutput is one) and dataclasses."""
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, dict):
        return [t for v in obj.values() for t in _flat_tensors(v)]
    if isinstance(obj, (tuple, list)):
        return [t for v in obj for t in _flat_tensors(v)]
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return [t for f in dataclasses.fields(obj) for t in _flat_tensors(getattr(obj, f.name, None))]
    return []


def _any_tensor(obj, seen: dict | None = None) -> bool:
    """Whether `obj` holds a tensor (one in `seen`, keyed by id, when given); `_flat_tensors` without the list,
    stopping at the first, as the recorder asks it of every torch call's arguments and output."""
    if isinstance(obj, torch.Tensor):
        return seen is None or id(obj) in seen
    if isinstance(obj, (tuple, list)):
        return any(_any_tensor(v, seen) for v in obj)
    if isinstance(obj, (int, float, bool, str, type(None))):
        return False
    if isinstance(obj, dict):
        return any(_any_tensor(v, seen) for v in obj.values())
    return any(_any_tensor(t, seen) for t in _flat_tensors(obj))


def is_leaf(module: nn.Module) -> bool:
    """A module the recorder keeps as one node: every Linear/Conv, a registered activation, and a torch.nn
    module that holds no Linear/Conv (an activation, a normalization, a pool) or is attention."""
    from wninit.structure.activations import is_registered

    if isinstance(module, _LAYERS) or is_registered(module) or isinstance(module, nn.MultiheadAttention):
        return True
    if not type(module).__module__.startswith("torch.nn") or isinstance(module, _CONTAINERS):
        return False
    return not any(isinstance(m, _LAYERS) for m in module.modules())


def _node_kind(func) -> tuple[str, Any]:
    """`(op, target)` of a torch call's node: a tensor method is `call_method` by name, its operators
    (`__add__`...) the `operator` functions fx writes, anything else `call_function` of the function itself."""
    name = getattr(func, "__name__", "")
    tensor_method = getattr(func, "__qualname__", "").split(".")[0] in ("TensorBase", "Tensor")
    if tensor_method and name in _DUNDER_FUNCS:
        return "call_function", _DUNDER_FUNCS[name]
    if tensor_method and not name.startswith("__"):
        return "call_method", name
    return "call_function", func


class Recording:
    """The graph of one forward pass: `graph`, the model's output, and, when asked, the tensor of each node."""

    def __init__(self, model: nn.Module, keep: set[str] | None = None,
                 on_node: Callable[[fx.Node, Any], Any] | None = None):
        self.model, self.graph, self.keep, self.on_node = model, fx.Graph(), keep or set(), on_node
        # One walk over the modules: their names, their training modes (restored after the run) and the leaves
        # to wrap. A module inside a leaf runs inside it (a layer's weight-norm parametrization) and is not
        # wrapped. A wrapped forward, not hooks: hooks send a call down nn.Module's slow path (docs/performance.md).
        self.names: dict[int, str] = {}
        self.modes: list[tuple[nn.Module, bool]] = []
        self.leaves: list[nn.Module] = []
        under_leaf: set[str] = set()
        for name, m in model.named_modules():
            self.names[id(m)] = name
            self.modes.append((m, m.training))
            if name and (name.rpartition(".")[0] in under_leaf):
                under_leaf.add(name)
            elif is_leaf(m):
                self.leaves.append(m)
                under_leaf.add(name)
        self._attr_names: dict[int, str] | None = None  # made when a forward first reads a tensor it did not compute
        self.node_of: dict[int, fx.Node] = {}
        self.alive: list[torch.Tensor] = []  # keeps every recorded tensor alive: its id stays its own
        self.kept: dict[str, torch.Tensor] = {}
        self.values: dict[str, torch.Tensor] = {}
        self.kinds: dict[Any, tuple[str, Any]] = {}  # torch function -> (op, target) of its nodes
        self.depth = 0  # > 0 inside a leaf module: its insides are not recorded
        self.mode, self.mode_depth = None, 0  # the recorder's TorchFunctionMode, while on
        self.output = None
        self.bug = False  # set when the recorder's own code raised: that error is a bug, never the user's

    def attr_name(self, t: torch.Tensor) -> str:
        """The name of a parameter or buffer of the model (the first name of a shared one), else `_constant`."""
        if self._attr_names is None:
            self._attr_names = {id(p): n for n, p in self.model.named_parameters()}
            self._attr_names.update((id(b), n) for n, b in self.model.named_buffers())
        return self._attr_names.get(id(t), "_constant")

    # -- nodes ---------------------------------------------------------------------------------------------
    def node(self, op: str, target, args: tuple, kwargs: dict | None = None) -> fx.Node:
        """A node of the graph, its arguments set after it is made: the same node `Graph.create_node(op,
        target, args, kwargs)` makes, without its scan of the arguments for symbolic sizes (a real forward
        has none), a third of its cost (docs/performance.md)."""
        node = self.graph.create_node(op, target)
        node.args = args
        if kwargs:
            node.kwargs = kwargs
        return node

    def _bind(self, t: torch.Tensor, node: fx.Node) -> torch.Tensor:
        if self.on_node is not None:
            replaced = self.on_node(node, t)
            if replaced is not None:
                t = replaced
        self.node_of[id(t)] = node
        self.alive.append(t)
        if node.name in self.keep:  # the live tensor (for gradients) and its value now (an in-place op may follow)
            self.kept[node.name] = t
            self.values[node.name] = t.detach().clone()
        return t

    def _arg(self, a):
        """An argument as the graph holds it: a seen tensor is its node, an unseen one a `get_attr` node."""
        if isinstance(a, torch.Tensor):
            node = self.node_of.get(id(a))
            if node is None:
                node = self.graph.get_attr(self.attr_name(a))
                self.node_of[id(a)] = node
                self.alive.append(a)
            return node
        if isinstance(a, (tuple, list)):
            return type(a)(self._arg(x) for x in a) if not hasattr(a, "_fields") else tuple(self._arg(x) for x in a)
        if isinstance(a, dict):
            return {k: self._arg(v) for k, v in a.items()}
        return a if isinstance(a, (int, float, bool, str, type(None), torch.dtype, torch.device, slice)) else None

    def _outputs(self, out, node: fx.Node):
        """Bind the tensors of `out` to `node` (one tensor) or to `getitem` nodes of it (a tuple)."""
        if isinstance(out, torch.Tensor):
            return self._bind(out, node)
        if isinstance(out, (tuple, list)):  # the tuple itself is returned: a structseq keeps its names
            for i, o in enumerate(out):
                if isinstance(o, torch.Tensor):
                    self._outputs(o, self.node("call_function", operator.getitem, (node, i)))
        return out

    def has_input(self, args, kwargs) -> bool:
        return _any_tensor(args, self.node_of) or (bool(kwargs) and _any_tensor(kwargs, self.node_of))

    # -- torch calls ---------------------------------------------------------------------------------------------
    def function(self, func, args, kwargs, out):
        if self.depth or not _any_tensor(out) or not self.has_input(args, kwargs):
            return out
        kind = self.kinds.get(func)
        if kind is None:
            kind = self.kinds[func] = _node_kind(func)
        op, target = kind
        node = self.node(op, target, self._arg(tuple(args)), self._arg(dict(kwargs)))
        return self._outputs(out, node)

    # -- module boundaries ---------------------------------------------------------------------------------------
    def leaf_forward(self, module: nn.Module, forward: Callable) -> Callable:
        """`module.forward` for the recording: the leaf as one node, its insides unrecorded. It runs where hooks
        would not slow the call: nn.Module's fast path (no hooks) calls it, after the module's own pre-hooks
        (a legacy weight-norm hook computes the weight there, on parameters, which is no dataflow)."""
        def run(*args, **kwargs):
            if self.depth:  # inside a leaf: not recorded
                self.depth += 1
                try:
                    return forward(*args, **kwargs)
                finally:
                    self.depth -= 1
            try:
                inputs = self._arg(tuple(args))
            except BaseException:
                self.bug = True
                raise
            self.depth = 1
            off = self.mode is not None and torch._C._len_torch_function_stack() == self.mode_depth
            if off:
                self.mode.__exit__(None, None, None)  # off while the leaf runs: its own torch calls are not recorded
            try:
                out = forward(*args, **kwargs)
            finally:
                self.depth = 0
                if off:
                    self.mode.__enter__()
            try:
                return self._leave_leaf(module, inputs, out)
            except BaseException:
                self.bug = True
                raise
        return run

    def _leave_leaf(self, module, inputs, out):
        target = self.names[id(module)]
        node = self.node("call_module", target, inputs)
        if isinstance(module, nn.MultiheadAttention) and isinstance(out, tuple) and isinstance(module.out_proj, _LAYERS):
            # The output projection is read, not called: write it as the layer it is, after the attention.
            proj = self.node("call_module", f"{target}.out_proj" if target else "out_proj",
                             (self.node("call_function", operator.getitem, (node, 0)),))
            self._bind(out[0], proj)
            for i, o in enumerate(out[1:], 1):
                if isinstance(o, torch.Tensor):
                    self._outputs(o, self.node("call_function", operator.getitem, (node, i)))
            return out
        return self._outputs(out, node)


@contextlib.contextmanager
def gc_paused():
    """Python's cycle collector off for the block, as it was after it. A recording makes a few objects per
    torch call, all kept to its end: each full collection meanwhile scans the whole heap, a model's tens of
    thousands of modules and tensors included, a quarter of recording a 3,000-layer net (docs/performance.md)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


class _Mode(TorchFunctionMode):
    def __init__(self, rec: Recording):
        super().__init__()
        self.rec = rec

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if self.rec.depth:  # inside a leaf module: nothing to record (most calls of a forward are here)
            return out
        try:
            return self.rec.function(func, args, kwargs, out)
        except BaseException:
            self.rec.bug = True  # the recorder's own error: a bug, never the user's
            raise


def _cuda_devices(model: nn.Module, call: ExampleCall) -> list[int]:
    """The CUDA devices the forward may draw on (the model's and the input's), whose streams `record` forks."""
    if not torch.cuda.is_initialized():
        return []
    tensors = [*call.tensors(), *model.parameters(), *model.buffers()]
    return sorted({t.device.index or 0 for t in tensors if t.is_cuda})


def record(model: nn.Module, example_inputs, *, keep: set[str] | None = None,
           on_node: Callable[[fx.Node, Any], Any] | None = None, grad: bool = False) -> Recording:
    """Run `model` once on `example_inputs` (eval mode, no gradients unless `grad`) and record its dataflow.

    `keep`: node names whose tensors the recording keeps (`Recording.kept`, and their values when made in
    `Recording.values`); `on_node(node, tensor)` is
    called as each node's tensor is made and may return a replacement (the measured gains of
    `wninit.structure.measure` rescale a branch this way). A model that rejects the input raises
    `UserError` naming the input's shapes; an error inside the recorder itself is a bug and propagates.
    """
    call = example_call(example_inputs)
    with gc_paused():
        return _record(model, call, keep, on_node, grad)


def _record(model, call, keep, on_node, grad) -> Recording:
    rec = Recording(model, keep, on_node)
    for i, t in enumerate(call.tensors()):
        rec._bind(t, rec.graph.placeholder(f"input_{i}"))
    own = [m.__dict__.get("forward") for m in rec.leaves]  # a forward patched on the instance, kept
    try:
        for m in rec.leaves:  # set in __dict__: nn.Module.__setattr__'s checks cost more than the call itself
            m.__dict__["forward"] = rec.leaf_forward(m, m.forward)
        if any(training for _, training in rec.modes):
            model.eval()
        with (torch.random.fork_rng(devices=_cuda_devices(model, call)), torch.set_grad_enabled(grad),
              _Mode(rec) as rec.mode):
            rec.mode_depth = torch._C._len_torch_function_stack()
            try:
                out = call(model)
            except (RuntimeError, TypeError, ValueError, IndexError) as exc:
                if rec.bug:
                    raise
                shapes = ", ".join(str(tuple(t.shape)) for t in call.tensors())
                raise UserError(f"{type(model).__name__} rejected the example input of shape(s) {shapes} "
                                f"({type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}); "
                                "pass example_inputs the model's forward accepts") from exc
    finally:
        for m, forward in zip(rec.leaves, own):
            if forward is None:
                del m.__dict__["forward"]
            else:
                m.__dict__["forward"] = forward
        for m, training in rec.modes:
            if m.training != training:  # nn.Module's __setattr__ is slow: on a 10,000-layer net, set only what changed
                m.training = training
    rec.output = out
    rec.graph.output(tuple(rec.node_of[id(t)] for t in _flat_tensors(out) if id(t) in rec.node_of))
    return rec
