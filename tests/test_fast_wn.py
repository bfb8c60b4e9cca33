"""The fast WN layers (WNLinear, WNConv1d/2d/3d) compute torch's weight norm exactly, at the cost of one op;
and ``wninit bench``, which runs the benchmarks that measure them.

Claims: forward and gradients wrt x, g, v, b equal ``torch.nn.utils.parametrizations.weight_norm`` with
the same g, v, b (float32); float64 gradcheck passes, and gradgradcheck inside ``twice_differentiable()``
(the Hessian diagnostics' double backward); the analytic gradient ``grad_g = <grad_w, v>/||v||``,
``grad_v = g/||v|| (grad_w - grad_g v/||v||)`` holds; a WN layer launches exactly one ATen op more
than the plain layer forward and one more backward, besides views (the speed design,
wninit.suite.bench.wn); torch.compile and half precision compute the same function.
"""
from __future__ import annotations


import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

import wninit
import wninit.weightnorm.access as wnm

# (plain layer factory, input shape): every layer type the fast path serves, small.
LAYERS = {
    "linear": (lambda: nn.Linear(6, 5), (4, 6)),
    "linear_nobias": (lambda: nn.Linear(6, 5, bias=False), (4, 6)),
    "square": (lambda: nn.Linear(5, 5), (3, 5)),  # C_out == fan_in: a g broadcast along the wrong dim would pass silently
    "conv1d": (lambda: nn.Conv1d(3, 4, 3, padding=1), (2, 3, 5)),
    "conv2d": (lambda: nn.Conv2d(2, 3, 3, stride=2, padding=1), (1, 2, 4, 4)),
    "conv2d_1x1": (lambda: nn.Conv2d(4, 6, 1), (2, 4, 3, 3)),
    "conv3d": (lambda: nn.Conv3d(2, 3, 2), (1, 2, 3, 3, 3)),
}


def _pair(name: str, dtype=torch.float32, seed: int = 0):
    """A wninit WN layer and a torch-parametrized one holding the same g (not ||v||), v and b."""
    make, in_shape = LAYERS[name]
    torch.manual_seed(seed)
    ours = wnm.weight_norm(make().to(dtype), "wninit")
    theirs = wnm.weight_norm(make().to(dtype), "torch")
    with torch.no_grad():
        ours.g.uniform_(0.5, 2.0)  # g != ||v||, so a wrong norm cannot hide
        wnm.set_g_(theirs, ours.g)
        wnm.set_v_(theirs, ours.v)
        if ours.bias is not None:
            theirs.bias.copy_(ours.bias)
    x = torch.randn(in_shape, dtype=dtype, generator=torch.Generator().manual_seed(seed + 1))
    return ours, theirs, x


def _grads(layer: nn.Module, x: torch.Tensor, grad_out: torch.Tensor):
    x = x.clone().requires_grad_(True)
    y = layer(x)
    y.backward(grad_out)
    v, b = wnm.wn_v(layer), layer.bias
    # gain() is a (C_out,) view: read the gradient from the parameter itself (torch's is (C_out, 1))
    g_param = layer.g if wnm.wn_api(layer) == "wninit" else layer.parametrizations.weight.original0
    grads = [x.grad, g_param.grad.view(-1), v.grad] + ([b.grad] if b is not None else [])
    return y.detach(), grads


@pytest.mark.parametrize("name", LAYERS)
def test_forward_and_gradients_equal_torch_weight_norm(name):
    ours, theirs, x = _pair(name)
    grad_out = torch.randn(ours(x).shape, generator=torch.Generator().manual_seed(2))
    y_ours, g_ours = _grads(ours, x, grad_out)
    y_theirs, g_theirs = _grads(theirs, x, grad_out)
    torch.testing.assert_close(y_ours, y_theirs, rtol=1e-6, atol=1e-6)
    for a, b, what in zip(g_ours, g_theirs, ["x", "g", "v", "b"]):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6, msg=lambda m, w=what: f"grad wrt {w}: {m}")


def _as_function(layer: nn.Module):
    """The layer's own forward as a function of (x, g, v, b), for gradcheck."""
    def f(x, g, v, b):
        params = layer._parameters
        saved = dict(params)
        params.update(g=g, v=v, bias=b)
        try:
            return layer(x)
        finally:
            params.update(saved)
    return f


def _inputs(layer: nn.Module, x: torch.Tensor):
    return tuple(t.detach().clone().requires_grad_(True) for t in (x, layer.g, layer.v, layer.bias))


@pytest.mark.parametrize("name", ["linear", "square", "conv1d", "conv2d", "conv3d"])
def test_float64_gradcheck_of_the_fast_path(name):
    layer, _, x = _pair(name, torch.float64)
    assert torch.autograd.gradcheck(_as_function(layer), _inputs(layer, x))


@pytest.mark.parametrize("name", ["square", "conv2d"])
def test_float64_gradgradcheck_inside_twice_differentiable(name):
    layer, _, x = _pair(name, torch.float64)
    f = _as_function(layer)

    def twice(*args):
        with wnm.twice_differentiable():
            return f(*args)

    # fast_mode: the Jacobian of the gradient is checked along random directions (seconds, not minutes)
    assert torch.autograd.gradgradcheck(twice, _inputs(layer, x), fast_mode=True)


def test_hessian_vector_product_inside_twice_differentiable_equals_the_plain_formula():
    # Hv of a small WN MLP's loss wrt all parameters, against the same net written as g*v/||v|| by hand
    torch.manual_seed(0)
    model = wninit.models.MLP(5, 6, depth=2, num_classes=3).double()
    x, y = torch.randn(8, 5, dtype=torch.float64), torch.randint(0, 3, (8,))
    params = list(model.parameters())
    vec = [torch.randn_like(p) for p in params]

    def hvp(loss_fn):
        grads = torch.autograd.grad(loss_fn(), params, create_graph=True)
        return torch.autograd.grad(grads, params, grad_outputs=vec)

    def by_hand():
        h = x
        for layer in model.features:
            if isinstance(layer, wnm.WNLinear):
                w = layer.v * (layer.g / layer.v.norm(dim=1)).unsqueeze(1)
                h = torch.nn.functional.linear(h, w, layer.bias)
            else:
                h = layer(h)
        return torch.nn.functional.cross_entropy(model.head(h), y)

    def with_layers():
        with wnm.twice_differentiable():
            return torch.nn.functional.cross_entropy(model(x), y)

    for got, want in zip(hvp(with_layers), hvp(by_hand)):
        torch.testing.assert_close(got, want)


def test_gradient_matches_the_analytic_formula():
    torch.manual_seed(0)
    layer = wnm.weight_norm(nn.Linear(7, 3), "wninit")
    with torch.no_grad():
        layer.g.uniform_(0.5, 2.0)
    grad_w = torch.randn(3, 7, generator=torch.Generator().manual_seed(1))
    layer.weight.backward(grad_w)
    v, g = layer.v.detach(), layer.g.detach()
    norm = v.norm(dim=1, keepdim=True)
    grad_g = (grad_w * v).sum(1) / norm.squeeze(1)
    grad_v = g[:, None] / norm * (grad_w - grad_g[:, None] * v / norm)
    torch.testing.assert_close(layer.g.grad, grad_g, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(layer.v.grad, grad_v, rtol=1e-5, atol=1e-6)


class _OpLog(TorchDispatchMode):
    """Records every ATen op run while active (forward or backward)."""

    def __init__(self):
        super().__init__()
        self.ops: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        if name != "detach":  # AccumulateGrad's bookkeeping, one per parameter
            self.ops.append(name)
        return func(*args, **(kwargs or {}))


def _op_counts(layer: nn.Module, x: torch.Tensor) -> tuple[list[str], list[str]]:
    with _OpLog() as fwd:
        y = layer(x)
    loss = y.sum()
    with _OpLog() as bwd:
        loss.backward()
    return fwd.ops, bwd.ops


_METADATA_OPS = {"view", "_unsafe_view", "reshape", "_reshape_alias", "as_strided"}  # no kernel, no copy


def _extra_ops(wn: list[str], plain: list[str]) -> list[str]:
    extra = list(wn)
    for op in plain:
        extra.remove(op)  # raises if the WN layer lost one of the plain layer's ops
    return sorted(op for op in extra if op not in _METADATA_OPS)


@pytest.mark.parametrize("name", ["linear", "conv2d"])
def test_wn_costs_one_fused_op_forward_and_one_backward(name):
    make, in_shape = LAYERS[name]
    x = torch.randn(in_shape)
    plain_fwd, plain_bwd = _op_counts(make(), x)
    wn_fwd, wn_bwd = _op_counts(wnm.weight_norm(make(), "wninit"), x)
    assert _extra_ops(wn_fwd, plain_fwd) == ["_weight_norm_interface"]
    assert _extra_ops(wn_bwd, plain_bwd) == ["_weight_norm_interface_backward"]
    assert len(wn_fwd) <= len(plain_fwd) + 2 and len(wn_bwd) <= len(plain_bwd) + 2  # + at most one view each way


def test_weight_property_and_effective_weight_agree_with_the_layer():
    ours, theirs, x = _pair("conv2d")
    torch.testing.assert_close(ours.weight, theirs.weight, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(wnm.effective_weight(ours), ours.weight, rtol=1e-6, atol=1e-7)
    y = torch.nn.functional.conv2d(x, ours.weight, ours.bias, stride=2, padding=1)
    torch.testing.assert_close(ours(x), y)


def test_initialize_and_training_go_through_the_fast_layer():
    torch.manual_seed(0)
    model = wninit.models.MLP(12, 16, depth=3, num_classes=4)
    assert all(type(m) is wnm.WNLinear for _, m in wnm.weight_normed_layers(model))
    wninit.initialize(model, "proposed", generator=torch.Generator().manual_seed(0))
    first = model.features[1]
    torch.testing.assert_close(first.g, torch.full((16,), (2 * 12 / 16) ** 0.5))  # docs/method.md §3.5: gamma = 2
    torch.testing.assert_close(first.weight.norm(dim=1), first.g.detach())
    x, y = torch.randn(32, 12), torch.randint(0, 4, (32,))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    losses = []
    for _ in range(20):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]


@pytest.mark.parametrize("name", ["square", "conv2d"])
def test_compiled_and_half_precision_layers_compute_the_same_function(name):
    # torch.compile's decomposition of ATen's weight norm (and its half-precision fallback) broadcast g
    # against the last dim unless g comes in as (C_out, 1, ...): a square layer would be silently wrong.
    ours, _, x = _pair(name)
    y = ours(x)
    torch.testing.assert_close(torch.compile(ours, backend="aot_eager")(x), y, rtol=1e-5, atol=1e-6)
    half = _pair(name)[0].half()
    torch.testing.assert_close(half(x.half()).float(), y, rtol=1e-2, atol=1e-2)


def test_channels_last_input_and_weight_give_the_same_output():
    ours, _, x = _pair("conv2d")
    y = ours(x)
    ours.to(memory_format=torch.channels_last)
    torch.testing.assert_close(ours(x.to(memory_format=torch.channels_last)), y, rtol=1e-5, atol=1e-6)
