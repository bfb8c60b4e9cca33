"""Trace by running: the dataflow of one real forward pass, as a torch.fx graph (docs/method.md §3.9).

`torch.fx` traces symbolically and fails on Python control flow, `len`, shape arithmetic and item
assignment, which audio models and most packaged models use. Given an example input, `record` runs the
model once under a `torch.overrides.TorchFunctionMode` and writes every torch call whose inputs are
tensors it has seen into a `torch.fx.Graph`, keyed on tensor identity; module boundaries come from
global forward hooks, so a leaf module (a Linear/Conv, a torch.nn activation or normalization) is one
`call_module` node, as under fx. The analysis of `wninit.structure.trace` then reads the recorded
graph exactly as a symbolic one: tensor methods are `call_method` nodes, torch functions `call_function`
nodes, parameters and tensors created inside the forward `get_attr` nodes.

`nn.MultiheadAttention` reads its output projection's weight without calling it: the recorder writes the
attention as one node followed by a `call_module` node of `out_proj`, so a weight-normed output projection
is a layer like any other (the branch end of an attention block).

The recording runs in eval mode (dropout and stochastic depth are the identity there, BatchNorm uses its
running statistics) without gradients, and restores the mode and the hooks whatever the forward raises. A
forward that draws random numbers (VITS's noise, a sampling quantizer) draws them from a fork of the global
stream: every recording of the same model and input sees the same draw (the discovery pass and the measuring
pass of §3.10 are one input), and the caller's stream is left as it was.
"""
from __future__ import annotations

import dataclasses
import operator
from typing import Any, Callable

import torch
import torch.fx as fx
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils.hooks import RemovableHandle

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


def is_leaf(module: nn.Module) -> bool:
    """A module the recorder keeps as one node: every Linear/Conv, a registered activation, and a torch.nn
    module that holds no Linear/Conv (an activation, a normalization, a pool) or is attention."""
    from wninit.structure.activations import is_registered

    if isinstance(module, _LAYERS) or is_registered(module) or isinstance(module, nn.MultiheadAttention):
        return True
    if not type(module).__module__.startswith("torch.nn") or isinstance(module, _CONTAINERS):
        return False
    return not any(isinstance(m, _LAYERS) for m in module.modules())


class Recording:
    """The graph of one forward pass: `graph`, the model's output, and, when asked, the tensor of each node."""

    def __init__(self, model: nn.Module, keep: set[str] | None = None,
                 on_node: Callable[[fx.Node, Any], Any] | None = None):
        self.model, self.graph, self.keep, self.on_node = model, fx.Graph(), keep or set(), on_node
        self.names = {id(m): n for n, m in model.named_modules()}
        self.attr_names = {id(p): n for n, p in model.named_parameters()} | {id(b): n for n, b in model.named_buffers()}
        self.node_of: dict[int, fx.Node] = {}
        self.alive: list[torch.Tensor] = []  # keeps every recorded tensor alive: its id stays its own
        self.kept: dict[str, torch.Tensor] = {}
        self.values: dict[str, torch.Tensor] = {}
        self.depth = 0  # > 0 inside a leaf module: its insides are not recorded
        self.output = None
        self.bug = False  # set when the recorder's own code raised: that error is a bug, never the user's

    def guarded(self, fn, *args):
        """`fn(*args)`, marking the recording as failed by its own code when it raises."""
        try:
            return fn(*args)
        except BaseException:
            self.bug = True
            raise

    # -- nodes ---------------------------------------------------------------------------------------------
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
                node = self.graph.get_attr(self.attr_names.get(id(a), "_constant"))
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
                    self._outputs(o, self.graph.call_function(operator.getitem, (node, i)))
        return out

    def has_input(self, args, kwargs) -> bool:
        return any(id(t) in self.node_of for t in _flat_tensors((args, kwargs)))

    # -- torch calls ---------------------------------------------------------------------------------------------
    def function(self, func, args, kwargs, out):
        if self.depth or not _flat_tensors(out) or not self.has_input(args, kwargs):
            return out
        name = getattr(func, "__name__", "")
        qual = getattr(func, "__qualname__", "")
        a, k = self._arg(tuple(args)), self._arg(dict(kwargs))
        if name in _DUNDER_FUNCS and qual.split(".")[0] in ("TensorBase", "Tensor"):
            node = self.graph.call_function(_DUNDER_FUNCS[name], a, k)
        elif qual.split(".")[0] in ("TensorBase", "Tensor") and not name.startswith("__"):
            node = self.graph.call_method(name, a, k)
        else:
            node = self.graph.call_function(func, a, k)
        return self._outputs(out, node)

    # -- module boundaries ---------------------------------------------------------------------------------------
    def enter(self, module, args, kwargs):
        if self.depth:
            self.depth += 1  # inside a leaf: not recorded
        elif is_leaf(module):
            module._wninit_recorded_inputs = (self._arg(tuple(args)), self._arg(dict(kwargs)))
            self.depth = 1

    def leave(self, module, args, kwargs, out):
        if not self.depth:
            return None  # a module the recorder looks inside: its torch calls are the nodes
        self.depth -= 1
        if self.depth:
            return None
        a, k = module.__dict__.pop("_wninit_recorded_inputs")
        target = self.names.get(id(module))
        if target is None:
            return None  # a module outside the model (built inside forward): its output is a constant
        node = self.graph.call_module(target, a, k)
        if isinstance(module, nn.MultiheadAttention) and isinstance(out, tuple) and isinstance(module.out_proj, _LAYERS):
            # The output projection is read, not called: write it as the layer it is, after the attention.
            proj = self.graph.call_module(f"{target}.out_proj" if target else "out_proj",
                                          (self.graph.call_function(operator.getitem, (node, 0)),))
            self._bind(out[0], proj)
            for i, o in enumerate(out[1:], 1):
                if isinstance(o, torch.Tensor):
                    self._outputs(o, self.graph.call_function(operator.getitem, (node, i)))
            return out
        return self._outputs(out, node)


class _Mode(TorchFunctionMode):
    def __init__(self, rec: Recording):
        super().__init__()
        self.rec = rec

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        return self.rec.guarded(self.rec.function, func, args, kwargs, out)


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
    rec = Recording(model, keep, on_node)
    for i, t in enumerate(call.tensors()):
        rec._bind(t, rec.graph.placeholder(f"input_{i}"))
    handles: list[RemovableHandle] = [
        nn.modules.module.register_module_forward_pre_hook(lambda m, a: rec.guarded(rec.enter, m, a, {})),
        nn.modules.module.register_module_forward_hook(lambda m, a, o: rec.guarded(rec.leave, m, a, {}, o)),
    ]
    modes = {m: m.training for m in model.modules()}
    model.eval()
    try:
        with torch.random.fork_rng(devices=_cuda_devices(model, call)), torch.set_grad_enabled(grad), _Mode(rec):
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
        for h in handles:
            h.remove()
        for m, training in modes.items():
            m.training = training
        for m in model.modules():
            m.__dict__.pop("_wninit_recorded_inputs", None)
    rec.output = out
    rec.graph.output(tuple(rec.node_of[id(t)] for t in _flat_tensors(out) if id(t) in rec.node_of))
    return rec
