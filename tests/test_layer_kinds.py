"""Every layer kind under weight norm: Linear, Conv1d/2d/3d, ConvTranspose1d/2d/3d (strides 1, 2, 8), groups 1,
8 and depthwise, WN over dim 0, 1 or the whole weight, under each of the three WN APIs.

Claims: with gamma = 1 a single layer keeps the per-position norm of its input (docs/method.md §3.1 and
``wninit.init.gains.layer_gain``): ``sqrt(mean_p ||y_p||^2 / mean_p ||x_p||^2)`` within 5% of 1, mean over 6
seeded draws, on an input that is not white (a few channel sources at unequal scales, spatially
correlated); the three APIs give the same weights; the suite's models get today's gains bit for bit;
bf16 and channels_last models get the float32 contiguous model's init; the converter turns a BN ResNet
into a WN one.
"""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import wninit
from wninit.weightnorm import access as wnm
from wninit.errors import UserError
from wninit.models import CNN, MLP, ResNet, WideResNet

# name: (layer factory, spatial input size). Sizes keep borders out of the measure (see _ratio) and the
# test fast; strides 1, 2, 8 for every transposed rank, groups 8 and depthwise (multiplier 1 and 2).
KINDS = {
    "linear": (lambda: nn.Linear(64, 32), ()),
    "linear_up": (lambda: nn.Linear(32, 96), ()),
    "conv1d": (lambda: nn.Conv1d(32, 64, 3), (48,)),
    "conv2d_s2": (lambda: nn.Conv2d(16, 32, 3, stride=2), (16, 16)),
    "conv3d": (lambda: nn.Conv3d(8, 16, 3), (7, 7, 7)),
    "conv2d_g8": (lambda: nn.Conv2d(64, 64, 3, groups=8), (10, 10)),
    "conv1d_g8": (lambda: nn.Conv1d(64, 128, 5, groups=8), (40,)),
    "conv2d_depthwise": (lambda: nn.Conv2d(64, 64, 3, groups=64), (10, 10)),
    "conv2d_depthwise_x2": (lambda: nn.Conv2d(32, 64, 3, groups=32), (10, 10)),
    "convT1d_s1": (lambda: nn.ConvTranspose1d(32, 16, 3), (48,)),
    "convT1d_s2": (lambda: nn.ConvTranspose1d(32, 16, 4, stride=2), (48,)),
    "convT1d_s8": (lambda: nn.ConvTranspose1d(32, 16, 16, stride=8), (24,)),
    "convT2d_s1": (lambda: nn.ConvTranspose2d(16, 8, 3), (12, 12)),
    "convT2d_s2": (lambda: nn.ConvTranspose2d(16, 8, 3, stride=2), (10, 10)),
    "convT2d_s8": (lambda: nn.ConvTranspose2d(16, 8, 8, stride=8), (3, 3)),
    "convT3d_s1": (lambda: nn.ConvTranspose3d(8, 4, 3), (8, 8, 8)),
    "convT3d_s2": (lambda: nn.ConvTranspose3d(8, 4, 4, stride=2), (5, 5, 5)),
    "convT3d_s8": (lambda: nn.ConvTranspose3d(8, 4, 8, stride=8), (2, 2, 2)),
    "convT1d_g8": (lambda: nn.ConvTranspose1d(64, 64, 4, stride=2, groups=8), (40,)),
    "convT1d_depthwise": (lambda: nn.ConvTranspose1d(32, 32, 4, stride=2, groups=32), (40,)),
}
# WN dims: 0 everywhere (torch's default: per input channel for a transposed conv), the output channels
# (dim 1) of a transposed conv, and the whole weight (None) for Linear and transposed convs.
CASES = [(name, dim) for name in KINDS
         for dim in ([0, 1, None] if name.startswith("convT") else [0, None] if name.startswith("linear") else [0])]


def _input(channels: int, spatial: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    """Not white: channels mixed from C/4 sources at scales 0.2..2, neighbours correlated; ||x_p|| = 1."""
    sources = max(2, channels // 4)
    z = torch.randn((2, sources) + spatial, generator=gen)
    mix = torch.randn(channels, sources, generator=gen) * torch.linspace(0.2, 2.0, channels).unsqueeze(1)
    x = torch.einsum("cr,nr...->nc...", mix, z)
    if spatial:
        x = x + torch.roll(x, 1, dims=-1)
    return x / x.norm(dim=1, keepdim=True)  # one norm at every position: a crop of y compares to all of x


def _ratio(layer: nn.Module, x: torch.Tensor) -> float:
    """sqrt(mean_p ||y_p||^2 / mean_p ||x_p||^2) over positions that receive all their taps.

    A transposed conv's border outputs (``k - s`` per side) receive fewer taps than the interior; a valid
    (unpadded) conv has no border."""
    with torch.no_grad():
        y = layer(x)
    if isinstance(layer, nn.modules.conv._ConvTransposeNd):
        margin = max(layer.kernel_size[0] - layer.stride[0], 0)
        if margin:
            y = y[(slice(None), slice(None)) + (slice(margin, -margin),) * (y.dim() - 2)]
    return math.sqrt(y.square().sum(1).mean() / x.square().sum(1).mean())


def _channels_in(layer: nn.Module) -> int:
    return layer.in_features if isinstance(layer, nn.Linear) else layer.in_channels


@pytest.mark.parametrize("name, dim", CASES, ids=[f"{n}-dim{d}" for n, d in CASES])
def test_a_single_layer_with_gamma_1_keeps_the_per_position_norm(name, dim):
    make, spatial = KINDS[name]
    x = _input(_channels_in(make()), spatial, torch.Generator().manual_seed(1))
    outputs = {}
    for api in wnm.APIS:
        torch.manual_seed(0)
        layer = wnm.weight_norm(make(), api, dim)
        assert wnm.wn_dim(layer) == dim
        ratios = []
        for draw in range(6):
            w = wninit.init.initialize_layer_(layer, "proposed", gamma=1.0, generator=torch.Generator().manual_seed(100 + draw))
            g = torch.full_like(wnm.wn_g(layer), wninit.init.layer_gain(layer, 1.0)).detach()
            torch.testing.assert_close(wnm.wn_g(layer).detach(), g)  # the formula's g, stored
            torch.testing.assert_close(wnm.unit_norms(w, dim), g)  # the returned weight: w = g v/||v|| per unit
            ratios.append(_ratio(layer, x))
        assert sum(ratios) / len(ratios) == pytest.approx(1.0, abs=0.05), (api, ratios)
        with torch.no_grad():
            outputs[api] = layer(x)
    # the same seed gives the same weights whichever API holds the layer
    torch.testing.assert_close(outputs["torch"], outputs["wninit"], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(outputs["legacy"], outputs["wninit"], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("make, fans, gain", [
    (lambda: nn.Conv2d(64, 128, 3, groups=8), (72, 144), math.sqrt(64 / 128)),         # fans of one group
    (lambda: nn.Conv2d(64, 64, 3, groups=64), (9, 9), 1.0),                           # depthwise
    (lambda: nn.ConvTranspose1d(512, 256, 16, stride=8), (512 * 16, 256 * 16), math.sqrt(8)),  # per input channel
    (lambda: nn.ConvTranspose2d(16, 8, 4, stride=2), (256, 128), math.sqrt(4)),
    (lambda: nn.ConvTranspose1d(64, 64, 4, stride=2, groups=8), (32, 32), math.sqrt(2)),
])
def test_fans_come_from_the_module_and_the_gain_is_the_derived_formula(make, fans, gain):
    layer = make()
    assert wninit.init.layer_fans(layer) == fans
    assert wninit.init.layer_gain(layer, gamma=1.0) == pytest.approx(gain, rel=1e-12)
    assert wninit.init.layer_gain(layer, gamma=2.0) == pytest.approx(gain * math.sqrt(2), rel=1e-12)


def test_gain_over_other_dims_is_the_formula():
    # ConvTranspose1d(32 -> 16, k 4, s 2) over its output channels: n_u = 32*4, fan_out = 16*4, s = 2
    layer = wnm.weight_norm(nn.ConvTranspose1d(32, 16, 4, stride=2), "torch", dim=1)
    assert wninit.init.layer_gain(layer, 1.0) == math.sqrt(2 * 32 * 4 / (16 * 4))
    layer = wnm.weight_norm(nn.Conv2d(8, 16, 3), "legacy", dim=None)  # the whole weight: n_u = 16*8*9
    assert wninit.init.layer_gain(layer, 1.0) == math.sqrt(16 * 8 * 9 / (16 * 9))
    assert wnm.wn_dim(layer) is None and wnm.wn_g(layer).shape == (1,)


@pytest.mark.parametrize("api", wnm.APIS)
@pytest.mark.parametrize("make, dim", [(lambda: nn.ConvTranspose1d(6, 4, 3, stride=2, groups=2), 0),
                                       (lambda: nn.ConvTranspose2d(3, 5, 3, stride=2), 1),
                                       (lambda: nn.ConvTranspose3d(2, 3, 2), None),
                                       (lambda: nn.Linear(5, 5), 1),
                                       (lambda: nn.Conv2d(4, 6, 3), None)])
def test_wrapping_any_kind_over_any_dim_preserves_the_function(api, make, dim):
    torch.manual_seed(0)
    layer = make()
    x = torch.randn((2, 5) if isinstance(layer, nn.Linear) else (2, _channels_in(layer)) + (4,) * (len(layer.kernel_size)))
    before = layer(x)
    wnm.weight_norm(layer, api, dim)
    assert wnm.wn_api(layer) == api and wnm.wn_dim(layer) == dim
    torch.testing.assert_close(layer(x), before)
    v = wnm.wn_v(layer).detach()
    torch.testing.assert_close(wnm.wn_g(layer).detach(), wnm.unit_norms(v, dim))
    wnm.set_g_(layer, 2.0)
    torch.testing.assert_close(wnm.effective_weight(layer).detach(), layer.weight.detach())
    torch.testing.assert_close(wnm.unit_norms(wnm.effective_weight(layer).detach(), dim),
                               torch.full((wnm.wn_g(layer).numel(),), 2.0))


def test_wninit_transposed_layer_equals_torchs_weight_norm_and_gets_gradients():
    torch.manual_seed(0)
    ours = wnm.WNConvTranspose2d(4, 6, 3, stride=2, groups=2)
    theirs = torch.nn.utils.parametrizations.weight_norm(nn.ConvTranspose2d(4, 6, 3, stride=2, groups=2))
    with torch.no_grad():
        theirs.parametrizations.weight.original1.copy_(ours.v)
        theirs.parametrizations.weight.original0.copy_(ours.g.view(-1, 1, 1, 1) * 1.5)
        ours.g.mul_(1.5)
        theirs.bias.copy_(ours.bias)
    x = torch.randn(2, 4, 5, 5)
    torch.testing.assert_close(ours(x, output_size=[11, 11]), theirs(x, output_size=[11, 11]))
    ours(x).square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in ours.parameters())


def test_initialize_walks_transposed_convs_and_records_the_kind():
    model = nn.Sequential(wnm.weight_norm(nn.Conv1d(8, 16, 3), "torch"),
                          wnm.weight_norm(nn.ConvTranspose1d(16, 8, 16, stride=8), "legacy"),
                          wnm.weight_norm(nn.ConvTranspose2d(8, 8, 4, stride=2, groups=8)))
    wninit.set_role(model[1], "shortcut", block=1, stage_blocks=1)  # gamma 1: nothing follows
    records = wninit.initialize(model, "proposed")
    assert [r.kind for r in records] == ["Conv1d", "ConvTranspose1d", "ConvTranspose2d"]
    assert [(r.fan_in, r.fan_out) for r in records] == [(24, 48), (256, 128), (16, 16)]
    assert records[1].g == pytest.approx(math.sqrt(8), rel=1e-6)  # per input channel: sqrt(gamma * stride)
    assert records[2].g == pytest.approx(math.sqrt(1 * 4), rel=1e-6)  # discovered: nothing follows, gamma 1; stride 2*2
    assert (records[2].role, records[2].source) == ("head", "discovered")
    for rec, layer in zip(records, model):
        torch.testing.assert_close(wnm.wn_g(layer).detach(), torch.full_like(wnm.wn_g(layer).detach(), rec.g))


@pytest.mark.parametrize("api", wnm.APIS)
@pytest.mark.parametrize("make", [lambda a: MLP(10, 16, 3, 4, wn_api=a), lambda a: CNN(3, 8, 4, 5, wn_api=a),
                                  lambda a: ResNet(20, 10, width=8, wn_api=a), lambda a: WideResNet(16, 2, 10, wn_api=a)])
def test_suite_models_get_the_papers_gain_from_pytorchs_fans_bit_for_bit(api, make):
    # what initialize computed before fans came from the module: sqrt(gamma * fan_in / fan_out) with
    # PyTorch's fans of v, the same float (==, not approx)
    model = make(api)
    for rec in wninit.initialize(model, "proposed", generator=torch.Generator().manual_seed(3)):
        layer = model.get_submodule(rec.name)
        fans = wninit.init.fan_in_and_fan_out(wnm.wn_v(layer))
        want = math.sqrt(rec.gamma * fans[0] / fans[1])
        assert (rec.fan_in, rec.fan_out) == fans and rec.g == float(torch.tensor(want))
        assert rec.kind == wnm.layer_kind(layer) and rec.kind in ("Conv2d", "Linear")
        assert torch.equal(wnm.wn_g(layer).detach(), torch.full_like(wnm.wn_g(layer).detach(), want))


@pytest.mark.parametrize("api", wnm.APIS)
def test_bf16_and_channels_last_models_get_the_float32_contiguous_init(api):
    def init(model):
        wninit.initialize(model, "proposed", generator=torch.Generator().manual_seed(5))
        return [(wnm.wn_g(m).detach(), wnm.wn_v(m).detach()) for _, m in wnm.weight_normed_layers(model)]

    reference = init(WideResNet(10, 2, 10, wn_api=api))
    last = WideResNet(10, 2, 10, wn_api=api).to(memory_format=torch.channels_last)
    convs = [wnm.wn_v(m) for _, m in wnm.weight_normed_layers(last)]
    assert any(v.dim() == 4 and not v.is_contiguous() for v in convs)  # the layout this test is about
    for (g, v), (g_ref, v_ref) in zip(init(last), reference, strict=True):
        assert torch.equal(g, g_ref) and torch.equal(v, v_ref)
    half = WideResNet(10, 2, 10, wn_api=api).to(torch.bfloat16)
    for (g, v), (g_ref, v_ref) in zip(init(half), reference, strict=True):
        assert v.dtype == torch.bfloat16 and torch.equal(v, v_ref.to(torch.bfloat16))
        assert torch.equal(g, g_ref.to(torch.bfloat16))
    with torch.no_grad():
        out = half(torch.randn(4, 3, 8, 8, dtype=torch.bfloat16))
    assert torch.isfinite(out).all()


def test_unit_direction_is_orthogonal_over_the_normalized_units_in_any_dtype_and_layout():
    w = wninit.init.unit_direction_(torch.empty(8, 4, 3), "orthogonal", dim=1, generator=torch.Generator().manual_seed(0))
    rows = w.movedim(1, 0).flatten(1)
    torch.testing.assert_close(rows @ rows.T, torch.eye(4), atol=1e-6, rtol=0)
    half = wninit.init.unit_direction_(torch.empty(16, 8, 3, 3, dtype=torch.float16).to(memory_format=torch.channels_last),
                                  "orthogonal", generator=torch.Generator().manual_seed(0))
    rows = half.float().flatten(1)
    torch.testing.assert_close(rows @ rows.T, torch.eye(16), atol=5e-3, rtol=0)  # fp16 rounding of unit rows


def _bn_resnet(num_classes: int = 10) -> nn.Module:
    """A compact torchvision-layout ResNet with bottlenecks and BatchNorm (conv-bn-relu, downsample conv+bn, fc)."""
    class Bottleneck(nn.Module):
        def __init__(self, c_in, width, stride):
            super().__init__()
            self.conv1, self.bn1 = nn.Conv2d(c_in, width, 1, bias=False), nn.BatchNorm2d(width)
            self.conv2, self.bn2 = nn.Conv2d(width, width, 3, stride, 1, bias=False), nn.BatchNorm2d(width)
            self.conv3, self.bn3 = nn.Conv2d(width, 4 * width, 1, bias=False), nn.BatchNorm2d(4 * width)
            self.relu = nn.ReLU()
            self.downsample = None
            if stride != 1 or c_in != 4 * width:
                self.downsample = nn.Sequential(nn.Conv2d(c_in, 4 * width, 1, stride, bias=False), nn.BatchNorm2d(4 * width))

        def forward(self, x):
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.relu(self.bn2(self.conv2(out)))
            out = self.bn3(self.conv3(out))
            return self.relu(out + (x if self.downsample is None else self.downsample(x)))

    return nn.Sequential(nn.Conv2d(3, 16, 7, 2, 3, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
                         Bottleneck(16, 8, 1), Bottleneck(32, 8, 1), Bottleneck(32, 16, 2),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, num_classes))


@pytest.mark.parametrize("api", wnm.APIS)
def test_converter_turns_a_bn_resnet_into_a_wn_resnet_in_one_call(api):
    model = _bn_resnet()
    layers = [n for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert wninit.weight_norm(model, api, remove_batchnorm=True) is model
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    assert [n for n, _ in wnm.weight_normed_layers(model)] == layers  # the classifier too, by default
    records = wninit.initialize(model, "proposed")
    assert len(records) == len(layers)
    out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 10) and torch.isfinite(out).all()
    plain_head = wninit.weight_norm(_bn_resnet(), api, remove_batchnorm=True, exclude=["8"])
    assert not wnm.is_weight_normed(plain_head[8]) and isinstance(plain_head[1], nn.Identity)
    partly = _bn_resnet()
    wnm.weight_norm(partly[0], "legacy")  # already weight-normalized: kept under its API
    wninit.weight_norm(partly, api, exclude=[partly[5]])  # a module: all of its layers stay plain
    assert wnm.wn_api(partly[0]) == "legacy" and not wnm.weight_normed_layers(partly[5])
    assert wnm.is_weight_normed(partly[4].conv3) and isinstance(partly[4].bn3, nn.BatchNorm2d)


def test_converter_on_one_layer_and_over_another_dim():
    layer = nn.ConvTranspose1d(4, 6, 3)
    assert wninit.weight_norm(layer, "torch", dim=1) is layer and wnm.wn_dim(layer) == 1
    kept = nn.Sequential(nn.Conv1d(2, 3, 3), nn.BatchNorm1d(3))
    wninit.weight_norm(kept, dim=None)
    assert wnm.wn_dim(kept[0]) is None and isinstance(kept[1], nn.BatchNorm1d)  # BN kept unless asked


@pytest.mark.parametrize("call, match", [
    (lambda m: wninit.weight_norm(m, "fast"), "unknown weight-norm api"),
    (lambda m: wninit.weight_norm(m, exclude=["layer9"]), "not a submodule"),
    (lambda m: wninit.weight_norm(m, dim=4), "dim must be a dimension"),
    (lambda m: wninit.weight_norm(m, exclude=[""]), "found no Linear"),
    (lambda m: wninit.weight_norm(nn.Sequential(nn.ReLU(), nn.BatchNorm1d(3)), remove_batchnorm=True), "found no Linear"),
    (lambda m: wninit.weight_norm(nn.MultiheadAttention(4, 2), "wninit"), "subclasses"),
    (lambda m: wninit.weight_norm(wninit.weight_norm(nn.Linear(2, 2))), "already weight-normalized"),
])
def test_converter_bad_input_is_one_sentence_and_changes_nothing(call, match):
    model = _bn_resnet()
    before = {n: type(m) for n, m in model.named_modules()}
    with pytest.raises(UserError, match=match) as info:
        call(model)
    assert "\n" not in str(info.value)
    assert {n: type(m) for n, m in model.named_modules()} == before and not wnm.weight_normed_layers(model)


def test_datadep_refuses_units_that_are_not_output_channels():
    model = nn.Sequential(wnm.weight_norm(nn.ConvTranspose1d(4, 4, 3)))  # per input channel, and C_in == C_out
    with pytest.raises(ValueError, match="one g per output channel") as info:
        wninit.initialize(model, "datadep", batch=torch.randn(2, 4, 8))
    assert "\n" not in str(info.value)
    model = nn.Sequential(wnm.weight_norm(nn.ConvTranspose1d(4, 6, 3), dim=1))  # per output channel: fine
    batch = torch.randn(8, 4, 16, generator=torch.Generator().manual_seed(0))
    wninit.initialize(model, "datadep", batch=batch)
    with torch.no_grad():
        out = model(batch)
    torch.testing.assert_close(out.std((0, 2), unbiased=False), torch.ones(6), atol=1e-4, rtol=0)


def test_a_weight_normed_module_of_an_unknown_kind_is_named_not_skipped_quietly():
    model = nn.Sequential(wnm.weight_norm(nn.Linear(4, 4), "torch"), nn.ReLU())
    model.append(torch.nn.utils.parametrizations.weight_norm(nn.Bilinear(4, 4, 2)))
    with pytest.warns(UserWarning, match=r"leaves 1 weight-normed module.*2 \(ParametrizedBilinear\)"):
        records = wninit.initialize(model, "proposed")
    assert [r.name for r in records] == ["0"]
