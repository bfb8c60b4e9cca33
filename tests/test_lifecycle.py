"""A weight-normalized model's life after initialization: switch_api, remove_weight_norm and its inverse, copies
(deepcopy, AveragedModel/EMA) and autocast, on the zoo of public architectures and the suite's models."""
import copy

import pytest
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.overrides import TorchFunctionMode

import wninit
from wninit.weightnorm.state_dict import fold
from wninit.errors import UserError
from wninit.models import build_model
from wninit.weightnorm.access import effective_weight, weight_normed_layers, wn_api, wn_dim, wn_g, wn_parameters
from zoo import ZOO

EPS32 = torch.finfo(torch.float32).eps
SUITE = {"mlp": dict(depth=3, width=16), "cnn": dict(depth=3, width=8), "resnet": dict(depth=8, width=8),
         "wrn": dict(depth=10, k=2)}
MODELS = [*ZOO, *(f"suite_{arch}" for arch in SUITE)]


pytestmark = pytest.mark.usefixtures("one_thread")


def build(name, api):
    """The model ``name`` under weight-norm ``api`` with gains drawn away from ``||v||`` (else w = v), and its input."""
    torch.manual_seed(0)
    if name.startswith("suite_"):
        arch = name.removeprefix("suite_")
        model = build_model(arch, in_shape=(3, 8, 8), num_classes=5, wn_api=api, **SUITE[arch])
        x = torch.randn(4, 3, 8, 8)
    else:
        make, shape = ZOO[name]
        model, x = make(api=api), torch.randn(shape)
    gen = torch.Generator().manual_seed(1)
    for _, layer in weight_normed_layers(model):  # g = ||v_u|| times U(0.8, 1.25): the scale of torch's init
        norms = wninit.weightnorm.access.unit_norms(wn_parameters(layer)[2].detach(), wn_dim(layer))
        wninit.set_g_(layer, norms * (0.8 + 0.45 * torch.rand(norms.numel(), generator=gen)))
    return model.eval(), x


def snapshot(model):
    """``{layer: (api, dim, g, v, effective weight)}`` of every weight-normalized layer."""
    return {name: (wn_api(m), wn_dim(m), wn_g(m).detach().clone(), wn_parameters(m)[2].detach().clone(),
                   effective_weight(m).detach().clone()) for name, m in weight_normed_layers(model)}


def relative(y, ref):
    return ((y - ref).norm() / ref.norm()).item()


def output(model, x):
    with torch.no_grad():
        return model(x)


@pytest.mark.parametrize("name", MODELS)
def test_switch_api_round_trip_keeps_every_weight_bit_for_bit(name):
    """legacy -> torch -> wninit -> legacy: g, v, dim and effective weight of every layer, and the output, unchanged."""
    model, x = build(name, "legacy")
    before, y0 = snapshot(model), output(model, x)
    for api in ("torch", "wninit", "legacy"):
        if name == "wavenet" and api == "wninit":  # its causal convs subclass nn.Conv1d: named, nothing changed
            with pytest.raises(UserError, match=r"'causal' and \d+ more are subclasses: switch to 'torch'"):
                wninit.switch_api(model, api)
            assert {a for a, *_ in snapshot(model).values()} == {"torch"}
            continue
        assert wninit.switch_api(model, api) is model
        after = snapshot(model)
        assert after.keys() == before.keys()
        for layer, (old, new) in ((k, (before[k], after[k])) for k in before):
            assert new[0] == api and new[1] == old[1], layer
            assert torch.equal(new[2], old[2]) and torch.equal(new[3], old[3]), layer
            assert torch.equal(new[4], old[4]), f"{layer}: effective weight moved under {api}"
        assert relative(output(model, x), y0) <= 1e-6


@pytest.mark.parametrize("name", MODELS)
def test_fold_then_weight_norm_round_trip(name):
    """WN -> folded -> WN: folded weights are the float64 weights rounded once, outputs within 1e-6 relative,
    and weight_norm on the folded model recovers g = ||w_u|| and the effective weights to float32 rounding."""
    api = "legacy" if name == "hifigan_generator" else "wninit" if name.startswith("suite") else "torch"
    model, x = build(name, api)
    before, y0 = snapshot(model), output(model, x)
    wninit.remove_weight_norm(model)
    assert weight_normed_layers(model) == []
    for layer, (_, dim, g, v, w_kernel) in before.items():
        w = model.get_submodule(layer).weight.detach()
        w64 = v.double() * wninit.weightnorm.formula._unit_shape(g.double() / wninit.weightnorm.formula.unit_norms(v.double(), dim),
                                                         v, dim)
        assert ((w.double() - w64).abs() <= EPS32 / 2 * w64.abs()).all(), f"{layer}: not rounded once from float64"
        assert torch.allclose(w, w_kernel, rtol=4 * EPS32, atol=0), layer  # the WN kernel's float32 weight
    assert relative(output(model, x), y0) <= 1e-6
    wninit.weight_norm(model, api, dim=0, exclude=[n for n, m in model.named_modules()
                                                  if wninit.weightnorm.layer_kind(m) and n not in before])
    after = snapshot(model)
    assert after.keys() == before.keys()
    for layer, (_, dim, g, _, w) in before.items():
        assert dim == 0  # what weight_norm wraps with above
        assert torch.allclose(after[layer][2], g, rtol=4 * EPS32, atol=0), f"{layer}: g is not ||w_u||"
        assert torch.allclose(after[layer][4], w, rtol=8 * EPS32, atol=0), layer
    assert relative(output(model, x), y0) <= 1e-6


LAYERS = [(nn.Linear, (6, 5), (3, 6)), (nn.Conv1d, (4, 6, 3), (2, 4, 9)), (nn.Conv2d, (4, 6, 3), (2, 4, 7, 7)),
          (nn.ConvTranspose1d, (4, 6, 3), (2, 4, 9)), (nn.ConvTranspose2d, (4, 6, 3, 2), (2, 4, 5, 5)),
          (nn.Conv3d, (2, 3, 2), (1, 2, 4, 4, 4))]


@pytest.mark.parametrize("api", wninit.weightnorm.access.APIS)
@pytest.mark.parametrize("dim", [0, 1, None])
@pytest.mark.parametrize("kind, args, shape", LAYERS, ids=[k.__name__ for k, *_ in LAYERS])
def test_every_layer_kind_and_dim_switches_and_folds(kind, args, shape, dim, api):
    torch.manual_seed(0)
    layer, x = wninit.weight_norm(kind(*args), api, dim), torch.randn(shape)
    wninit.set_g_(layer, torch.rand(wn_g(layer).numel()) + 0.5)
    before, y0 = snapshot(layer), output(layer, x)
    for to in wninit.weightnorm.access.APIS:
        wninit.switch_api(layer, to)
        (new,) = snapshot(layer).values()
        assert new[:2] == (to, dim) and torch.equal(new[4], before[""][4])
    wninit.remove_weight_norm(layer)
    assert type(layer) is kind and isinstance(layer._parameters["weight"], nn.Parameter)
    assert torch.equal(layer.weight, fold(before[""][2], before[""][3], dim))
    assert relative(output(layer, x), y0) <= 1e-6


def test_mixed_apis_fold_and_switch_in_one_call():
    model = nn.Sequential(wninit.weight_norm(nn.Linear(4, 8), "legacy"), nn.ReLU(),
                          wninit.weight_norm(nn.Linear(8, 8), "torch", dim=None), wninit.weight_norm(nn.Linear(8, 2)))
    x = torch.randn(3, 4)
    y0 = output(model, x)
    wninit.switch_api(model, "torch")
    assert {wn_api(m) for _, m in weight_normed_layers(model)} == {"torch"}
    wninit.remove_weight_norm(model)
    assert [type(m) for m in model] == [nn.Linear, nn.ReLU, nn.Linear, nn.Linear]
    assert relative(output(model, x), y0) <= 1e-6


def test_switch_api_keeps_a_frozen_gain_frozen():
    layer = wninit.weight_norm(nn.Linear(3, 4), "legacy")
    layer.weight_g.requires_grad_(False)
    for api in ("torch", "wninit", "legacy"):
        _, g, v = wn_parameters(wninit.switch_api(layer, api))
        assert (g.requires_grad, v.requires_grad) == (False, True), api


def test_bad_input_is_one_sentence():
    with pytest.raises(UserError, match="unknown weight-norm api 'tf'"):
        wninit.switch_api(wninit.weight_norm(nn.Linear(2, 2)), "tf")
    with pytest.raises(UserError, match="no weight-normalized layer"):
        wninit.remove_weight_norm(nn.Sequential(nn.Linear(2, 2)))
    layer = wninit.weight_norm(nn.Linear(3, 3), "torch")
    torch.nn.utils.parametrize.register_parametrization(layer, "weight", nn.Identity())
    with pytest.raises(UserError, match="parametrizations besides weight norm"):
        wninit.remove_weight_norm(layer)
    assert wn_api(layer) == "torch"  # left as it was

    class Scaled(wninit.weightnorm.access.WNLinear):
        pass

    with pytest.raises(UserError, match="subclasses a wninit layer"):
        wninit.switch_api(Scaled(2, 2), "torch")


def small_model(api):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv1d(2, 6, 3), nn.ReLU(), nn.ConvTranspose1d(6, 4, 4, 2), nn.ReLU(), nn.Flatten(),
                          nn.Linear(4 * 14, 3))
    return wninit.weight_norm(model, api), torch.randn(5, 2, 8)


def train_step(model, x):
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    model(x).square().mean().backward()
    opt.step()


@pytest.mark.parametrize("api", wninit.weightnorm.access.APIS)
@pytest.mark.parametrize("make_copy", ["copy_model", "deepcopy", "AveragedModel"])
def test_copies_are_independent_and_correct(api, make_copy):
    """Training the original a step leaves the copy where it was; the copy computes with its own g and v."""
    model, x = small_model(api)
    model(x)  # the legacy API caches w (a non-leaf tensor) at every forward: what deepcopy refuses
    y0, params0 = output(model, x), {k: p.detach().clone() for k, p in model.named_parameters()}
    if make_copy == "copy_model":
        twin = wninit.weightnorm.copy_model(model)
    else:
        with wninit.weightnorm.copyable(model):
            twin = copy.deepcopy(model) if make_copy == "deepcopy" else AveragedModel(model)
        twin = twin.module if make_copy == "AveragedModel" else twin
    train_step(model, x)
    assert not torch.equal(output(model, x), y0), "the original did not train"
    assert torch.equal(output(twin, x), y0)
    for k, p in twin.named_parameters():
        assert torch.equal(p, params0[k]), f"{k} moved with the original"
    for _, layer in weight_normed_layers(twin):
        api_, g, v = wn_parameters(layer)
        assert torch.allclose(effective_weight(layer), fold(g, v, wn_dim(layer)), rtol=4 * EPS32, atol=1e-9)


@pytest.mark.parametrize("api", wninit.weightnorm.access.APIS)
def test_ema_averages_g_and_v_of_every_api(api):
    model, x = small_model(api)
    model(x)
    decay = 0.9
    with wninit.weightnorm.copyable(model):
        ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay))
    ema.update_parameters(model)
    before = {k: p.detach().clone() for k, p in model.named_parameters()}
    train_step(model, x)
    ema.update_parameters(model)
    for (k, avg), p in zip(ema.module.named_parameters(), model.parameters()):
        assert torch.allclose(avg, decay * before[k] + (1 - decay) * p.detach(), rtol=1e-6, atol=1e-7), k
    want = wninit.remove_weight_norm(wninit.weightnorm.copy_model(ema.module))  # the averaged g and v, folded
    assert relative(output(ema, x), output(want, x)) <= 1e-6


class _Weights(TorchFunctionMode):
    """Records the weight each linear/conv call receives, before autocast casts it."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if getattr(func, "__name__", "") in ("linear", "conv1d", "conv2d", "conv_transpose1d"):
            self.seen.append(args[1])
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("api", wninit.weightnorm.access.APIS)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_computes_the_norm_in_float32(api, dtype):
    """Under autocast the weight handed to each layer is float32 and within float32 rounding of the float64
    weight (a norm taken in bf16 is off by ~4e-3, in fp16 by ~5e-4), and the output is the float64 reference
    to the half type's rounding."""
    model, x = small_model(api)
    for _, layer in weight_normed_layers(model):
        wninit.set_g_(layer, torch.linspace(0.5, 2.0, wn_g(layer).numel()))
    reference = wninit.remove_weight_norm(wninit.weightnorm.copy_model(model)).double()
    with torch.no_grad(), torch.autocast("cpu", dtype=dtype), _Weights() as mode:
        y = model(x)
    assert y.dtype == dtype and len(mode.seen) == 3
    for w, (_, layer) in zip(mode.seen, weight_normed_layers(model)):
        _, g, v = wn_parameters(layer)
        w64 = fold(g.double(), v.double(), wn_dim(layer))
        assert w.dtype == torch.float32
        assert ((w.double() - w64).abs() <= 4 * EPS32 * w64.abs()).all()
    assert relative(y.double(), output(reference, x.double())) <= 2e-2


def test_removing_weight_norm_from_a_copy_leaves_the_original_working():
    """torch's deepcopy of a parametrized layer shares its class, and torch's remove_parametrizations deletes
    the weight from that class; copy_model and remove_weight_norm keep the original working."""
    model, x = small_model("torch")
    y0 = output(model, x)
    twin = wninit.weightnorm.copy_model(model)
    torch.nn.utils.parametrize.remove_parametrizations(twin[0], "weight")
    wninit.remove_weight_norm(copy.deepcopy(model))  # a plain deepcopy, shared class and all
    assert torch.equal(output(model, x), y0)
    assert {wn_api(m) for _, m in weight_normed_layers(model)} == {"torch"}


def _hooks(model):
    """Every hook on every module of ``model``, as (module name, hook kind, the hook function's qualified name)."""
    kinds = ("_forward_pre_hooks", "_forward_hooks", "_backward_hooks", "_state_dict_hooks", "_state_dict_pre_hooks",
             "_load_state_dict_pre_hooks", "_load_state_dict_post_hooks")
    found = []  # a list, sorted: a hook installed twice counts twice
    for name, m in model.named_modules():
        for kind in kinds:
            for hook in getattr(m, kind).values():
                fn = getattr(hook, "hook", hook)  # nn.Module wraps load pre-hooks
                found.append((name, kind, getattr(fn, "__qualname__", type(fn).__qualname__)))
    return sorted(found)


@pytest.mark.parametrize("first", wninit.weightnorm.access.APIS)
@pytest.mark.parametrize("to", wninit.weightnorm.access.APIS)
def test_switch_api_leaves_only_the_target_apis_hooks_and_the_model_loads_its_own_state_dict(first, to):
    model, x = small_model(first)
    model.load_state_dict(model.state_dict())  # under every API as wrapped
    wninit.switch_api(model, to)
    assert _hooks(model) == _hooks(small_model(to)[0])  # what wrapping under `to` installs, nothing of `first`'s
    y = output(model, x)
    model.load_state_dict(model.state_dict())
    for back in wninit.weightnorm.access.APIS:  # and after every further switch
        wninit.switch_api(model, back)
        assert _hooks(model) == _hooks(small_model(back)[0]), (first, to, back)
        model.load_state_dict(model.state_dict())
        assert relative(output(model, x), y) <= 1e-6
    wninit.remove_weight_norm(model)
    assert _hooks(model) == []
    model.load_state_dict(model.state_dict())


@pytest.mark.parametrize("to", ["plain", "legacy", "torch", "wninit"])
def test_a_checkpoint_with_a_zero_direction_folds_and_converts_without_nan(to):
    """g != 0 with an all-zero direction v, made outside wninit (torch's own layer computes 0/0 = NaN):
    the unit has the constant unit direction wrapping a zero weight gives it (docs/lifecycle.md)."""
    src = nn.utils.parametrizations.weight_norm(nn.Linear(6, 4))
    with torch.no_grad():
        src.parametrizations.weight.original0.copy_(torch.tensor([[2.0], [0.0], [3.0], [1.0]]))
        src.parametrizations.weight.original1[:2].zero_()  # unit 0: g 2, v 0; unit 1: g 0, v 0
    sd = src.state_dict()
    assert torch.isnan(src.weight).any()  # what torch itself computes
    w = fold(sd["parametrizations.weight.original0"], sd["parametrizations.weight.original1"])
    assert torch.equal(w[0], torch.full((6,), 2.0 / 6 ** 0.5)) and torch.equal(w[1], torch.zeros(6))
    assert torch.allclose(w[2:], src.weight[2:].detach(), rtol=1e-6, atol=0)  # the others as before
    target = nn.Linear(6, 4)
    if to != "plain":
        wninit.weight_norm(target, api=to)
    target.load_state_dict(wninit.convert_state_dict(sd, target))
    assert torch.allclose(effective_weight(target), w, rtol=0, atol=1e-6)
    assert not torch.isnan(target(torch.randn(3, 6))).any()
