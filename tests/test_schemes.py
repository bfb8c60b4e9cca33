import math

import pytest
import torch
from torch import nn

import wninit
from wninit.models import CNN, MLP, ResNet, WideResNet
from wninit.weightnorm.access import effective_weight, weight_norm, weight_normed_layers, wn_g


def _by_name(records):
    return {r.name: r for r in records}


def test_reference_code_test_linear_20_to_60():
    model = nn.Sequential(weight_norm(nn.Linear(20, 60)), nn.ReLU())  # the reference's test layer feeds a ReLU
    (rec,) = wninit.initialize(model, "proposed")
    assert wn_g(model[0]).mean().item() == pytest.approx(math.sqrt(2 * 20 / 60), rel=1e-6)
    assert rec.role == "hidden" and rec.gamma == 2.0 and rec.source == "discovered"


def test_a_layer_nothing_follows_keeps_its_input_norm():
    """Discovered, not defaulted: with no activation after it, a WN layer gets gamma 1 (docs/method.md §3.7)."""
    model = nn.Sequential(weight_norm(nn.Linear(20, 60)))
    (rec,) = wninit.initialize(model, "proposed")
    assert wn_g(model[0]).mean().item() == pytest.approx(math.sqrt(20 / 60), rel=1e-6)
    assert (rec.role, rec.gamma, rec.source, rec.rule) == ("stem", 1.0, "discovered", "nothing follows")


def test_wrn_40_10_gain_table_of_the_spec():
    """docs/method.md §3.5 'Worked gains for WRN-40-10' (k = 10, N = 6), exactly."""
    model = WideResNet(40, 10, 10)
    recs = _by_name(wninit.initialize(model, "proposed", direction="gaussian"))  # g does not depend on v
    expected = {
        "stem": math.sqrt(27 / 144),                        # 0.433
        "blocks.0.conv1": math.sqrt(2 * 144 / 1440),        # 0.447
        "blocks.1.conv1": math.sqrt(2),                     # 1.414
        "blocks.0.conv2": math.sqrt(1 / 6),                 # 0.408, every conv2
        "blocks.17.conv2": math.sqrt(1 / 6),
        "blocks.0.shortcut": math.sqrt(0.1),                # 0.316
        "blocks.6.conv1": 1.0, "blocks.12.conv1": 1.0,      # stages 2, 3 first conv1 (C -> 2C)
        "blocks.6.shortcut": math.sqrt(0.5), "blocks.12.shortcut": math.sqrt(0.5),  # 0.707
    }
    for name, g in expected.items():
        assert recs[name].g == pytest.approx(g, rel=1e-6), name
        torch.testing.assert_close(wn_g(model.get_submodule(name)).detach(), torch.full((wn_g(model.get_submodule(name)).numel(),), g))
    assert round(recs["stem"].g, 3) == 0.433 and round(recs["blocks.0.shortcut"].g, 3) == 0.316


@pytest.mark.parametrize("width", [128, 512])
def test_mlp_gain_table_of_the_spec(width):
    model = MLP(784, width, 5, 10)
    recs = wninit.initialize(model, "proposed")
    assert recs[0].g == pytest.approx(math.sqrt(2 * 784 / width), rel=1e-6)
    assert all(r.g == pytest.approx(math.sqrt(2), rel=1e-6) for r in recs[1:])
    assert [r.name for r in recs] == [f"features.{1 + 2 * i}" for i in range(5)]  # head untouched


@pytest.mark.parametrize("model_fn", [lambda: MLP(10, 16, 3, 4), lambda: CNN(3, 8, 4, 5),
                                      lambda: ResNet(20, 10, width=8), lambda: WideResNet(16, 2, 10)])
@pytest.mark.parametrize("scheme", ["proposed", "hanin", "proposed-backward"])
def test_every_gain_is_the_role_formula_and_biases_are_zero(model_fn, scheme):
    model = model_fn()
    head_before = model.head.weight.clone()
    records = wninit.initialize(model, scheme, generator=torch.Generator().manual_seed(1))
    assert len(records) == len(weight_normed_layers(model)) > 0
    for rec in records:
        layer = model.get_submodule(rec.name)
        role = wninit.get_role(layer)
        gamma = wninit.init.role_gamma(role, scheme)
        want = math.sqrt(gamma) if scheme == "proposed-backward" else wninit.proposed_gain(rec.fan_in, rec.fan_out, gamma)
        torch.testing.assert_close(wn_g(layer).detach(), torch.full_like(wn_g(layer), want))
        assert torch.count_nonzero(layer.bias) == 0
        if role.kind == "block_out":
            assert gamma == pytest.approx(0.81 ** role.block if scheme == "hanin" else 1 / role.stage_blocks, rel=1e-12)
        else:
            # the ResNet stem declares the reference ResNet class's gamma 2; WRN, MLP and CNN keep the table's
            stem = 2.0 if isinstance(model, ResNet) else 1.0
            assert gamma == {"stem": stem, "hidden": 2.0, "block_in": 2.0, "shortcut": 1.0}[role.kind]
    assert torch.equal(model.head.weight, head_before)  # docs/method.md §3.5a: PyTorch default, not re-initialized


def test_resnet_stem_declares_the_reference_gamma_and_stem_gamma_overrides_it():
    model = ResNet(8, 10)
    rec = _by_name(wninit.initialize(model, "proposed"))["stem"]
    assert rec.gamma == 2.0 and rec.g == pytest.approx(math.sqrt(2 * 27 / 144))
    rec = _by_name(wninit.initialize(model, "proposed", stem_gamma=1.0))["stem"]
    assert rec.gamma == 1.0 and rec.g == pytest.approx(math.sqrt(27 / 144))
    assert _by_name(wninit.initialize(WideResNet(10, 1, 10), "proposed"))["stem"].gamma == 1.0


def test_stage_wise_counts_restart_per_stage():
    model = ResNet(20, 10)  # N = 3
    roles = [wninit.get_role(m) for _, m in model.named_modules() if wninit.get_role(m).kind == "block_out"
             and hasattr(m, "wninit_role")]
    assert [(r.stage, r.block, r.stage_blocks) for r in roles] == [(s, b, 3) for s in (1, 2, 3) for b in (1, 2, 3)]


@pytest.mark.parametrize("direction", ["orthogonal", "gaussian"])
def test_pytorch_default_sets_g_to_the_norm_of_v(direction):
    model = CNN(3, 8, 3, 10)
    wninit.initialize(model, "pytorch-default", direction=direction)
    for _, layer in weight_normed_layers(model):
        v = wninit.wn_v(layer).detach()
        torch.testing.assert_close(wn_g(layer).detach(), v.flatten(1).norm(dim=1))
        torch.testing.assert_close(effective_weight(layer).detach(), v)


@pytest.mark.parametrize("api", ["torch", "legacy"])
@pytest.mark.parametrize("scheme", ["proposed", "pytorch-default", "hanin"])
def test_same_seed_same_weights_for_every_api(api, scheme):
    def weights(wn_api):
        model = WideResNet(10, 2, 10, wn_api=wn_api)
        wninit.initialize(model, scheme, generator=torch.Generator().manual_seed(7))
        return [effective_weight(m).detach() for _, m in weight_normed_layers(model)]

    for a, b in zip(weights("wninit"), weights(api), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("api", ["wninit", "torch", "legacy"])
@pytest.mark.parametrize("direction", ["orthogonal", "gaussian"])
def test_wrapping_before_or_after_initialization_gives_the_same_layer(api, direction):
    torch.manual_seed(0)
    after, before = nn.Conv2d(16, 32, 3), nn.Conv2d(16, 32, 3)
    w_after = wninit.init.initialize_layer_(after, "proposed", gamma=2.0, direction=direction,
                                       generator=torch.Generator().manual_seed(5))
    assert w_after is after.weight  # a plain layer: the weight it filled in place
    weight_norm(after, api)
    weight_norm(before, api)
    w_before = wninit.init.initialize_layer_(before, "proposed", gamma=2.0, direction=direction,
                                        generator=torch.Generator().manual_seed(5))
    g = math.sqrt(2 * 16 / 32)  # sqrt(gamma fan_in/fan_out): the returned weight's rows have norm g
    torch.testing.assert_close(w_before.flatten(1).norm(dim=1), torch.full((32,), g))
    torch.testing.assert_close(wn_g(before).detach(), torch.full((32,), g))
    torch.testing.assert_close(w_before, effective_weight(before).detach())
    torch.testing.assert_close(w_after.detach(), w_before, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(effective_weight(after), effective_weight(before), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(wn_g(after), wn_g(before), atol=1e-6, rtol=1e-5)
    x = torch.randn(2, 16, 6, 6)
    torch.testing.assert_close(after(x), before(x), atol=1e-5, rtol=1e-5)


def test_row_norms_of_v_are_irrelevant():
    model = MLP(20, 30, 3, 4)
    wninit.initialize(model, "proposed")
    x = torch.randn(5, 20)
    out = model(x)
    for _, layer in weight_normed_layers(model):
        with torch.no_grad():
            wninit.wn_v(layer).mul_(17.0)
    torch.testing.assert_close(model(x), out)


@pytest.mark.parametrize("model_fn, shape", [(lambda: MLP(30, 64, 6, 10), (256, 30)),
                                             (lambda: CNN(3, 16, 4, 10), (64, 3, 12, 12)),
                                             (lambda: ResNet(14, 10, width=8), (64, 3, 8, 8)),
                                             (lambda: WideResNet(16, 1, 10, wn_api="legacy"), (64, 3, 8, 8))])
def test_datadep_gives_zero_mean_unit_std_preactivations(model_fn, shape):
    torch.manual_seed(0)
    model, batch = model_fn(), torch.randn(shape)
    wninit.initialize(model, "datadep", batch=batch, generator=torch.Generator().manual_seed(0))
    seen = {}
    hooks = [m.register_forward_hook(lambda mod, i, o, n=n: seen.setdefault(n, o.detach()))
             for n, m in weight_normed_layers(model)]
    with torch.no_grad():
        model(batch)
    for h in hooks:
        h.remove()
    assert len(seen) == len(weight_normed_layers(model))
    for name, out in seen.items():
        dims = [0] + list(range(2, out.dim()))
        torch.testing.assert_close(out.mean(dims), torch.zeros(out.shape[1]), atol=1e-3, rtol=0, msg=name)
        torch.testing.assert_close(out.std(dims, unbiased=False), torch.ones(out.shape[1]), atol=1e-3, rtol=0, msg=name)


def _forward_ratios(model: MLP, x: torch.Tensor) -> list[float]:
    """mean over samples of ||h_i|| / ||x|| after each hidden ReLU."""
    ratios, h = [], x
    with torch.no_grad():
        for module in model.features:
            h = module(h)
            if isinstance(module, nn.ReLU):
                ratios.append((h.norm(dim=1) / x.norm(dim=1)).mean().item())
    return ratios


def test_proposed_preserves_the_forward_norm_and_g1_vanishes():
    """docs/method.md §9.1: width 1000, depth 20, gaussian inputs; proposed in [0.85, 1.15] at every layer,
    g = 1 (the notebook's 'He (g=1)') below 0.05 by layer 10. Seeded; the ratio's std at width 1000 is
    ~0.06 by layer 20 (docs/method.md §7.1 table), so the band is several standard errors of the 256-sample mean."""
    torch.manual_seed(0)
    model, x = MLP(1000, 1000, 20, 10), torch.randn(256, 1000)
    wninit.initialize(model, "proposed", generator=torch.Generator().manual_seed(0))
    proposed = _forward_ratios(model, x)
    assert all(0.85 <= r <= 1.15 for r in proposed), proposed
    for _, layer in weight_normed_layers(model):
        wninit.set_g_(layer, 1.0)
    he_g1 = _forward_ratios(model, x)
    assert he_g1[9] < 0.05 and he_g1[19] < 1e-3, he_g1
    # x 1/sqrt(2) per layer (docs/method.md §3.1): the per-layer factor, geometric mean over 20 layers, within 2%
    assert he_g1[19] ** (1 / 20) == pytest.approx(0.5 ** 0.5, rel=0.02)


def test_proposed_resnet_stage_grows_as_theory():
    """docs/method.md §3.4: within a stage of B blocks, E||h_b||^2 = (1 + 1/B)^b ||x||^2; the norm within 10%."""
    torch.manual_seed(0)
    blocks = 10
    stage = nn.Sequential(*[wninit.models.BasicBlock(128, 128, 1, "wn", "wninit", stage=1, block=b + 1,
                                                     stage_blocks=blocks) for b in range(blocks)])
    wninit.initialize(stage, "proposed", generator=torch.Generator().manual_seed(0))
    x = torch.randn(16, 128, 8, 8)
    h = x
    with torch.no_grad():
        for b, block in enumerate(stage, start=1):
            h = block(h)
            ratio = (h.flatten(1).norm(dim=1) / x.flatten(1).norm(dim=1)).mean().item()
            assert ratio == pytest.approx((1 + 1 / blocks) ** (b / 2), rel=0.1), (b, ratio)
    assert math.sqrt(2) <= ratio <= math.sqrt(math.e)


def test_plain_schemes_for_bn_and_plain_nets():
    model = ResNet(8, 10, norm="bn")
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            nn.init.uniform_(m.weight)  # torch 1.1.0's U(0,1) (docs/method.md §4), to be reset to 1
    recs = wninit.initialize(model, "orthogonal")
    assert recs and all(r.gamma is None for r in recs)
    w = model.stem.weight.flatten(1)
    torch.testing.assert_close(w @ w.T, torch.eye(16), atol=1e-5, rtol=0)
    assert all(torch.all(m.weight == 1) and torch.all(m.bias == 0) for m in model.modules() if isinstance(m, nn.BatchNorm2d))


@pytest.mark.parametrize("model_fn, scheme", [(lambda: MLP(64, 256, 2, 10, norm="none"), "he"),
                                              (lambda: CNN(16, 64, 2, 10, norm="none"), "xavier")], ids=["mlp-he", "cnn-xavier"])
def test_he_and_xavier_draw_their_normal_std_zero_biases_and_keep_the_plain_head(model_fn, scheme):
    """He-normal std sqrt(2/fan_in), Xavier-normal sqrt(2/(fan_in+fan_out)) per layer (docs/method.md §4), each
    within 4% (at least 9,216 weights a layer: the sample std's relative error is below 0.75%, so 4% is over 5 of
    it); biases 0; the plain classifier head keeps its PyTorch default init (docs/method.md §3.5)."""
    model = model_fn()
    head = {k: v.clone() for k, v in model.head.state_dict().items()}
    recs = wninit.initialize(model, scheme, generator=torch.Generator().manual_seed(0))
    assert [r.name for r in recs] == [f"features.{n}" for n, m in model.features.named_children() if hasattr(m, "weight")] \
        and len(recs) == 2
    for rec in recs:
        w = model.get_submodule(rec.name).weight.detach()
        fan_in, fan_out = w[0].numel(), w.shape[0] * w[0, 0].numel()
        want = math.sqrt(2 / fan_in) if scheme == "he" else math.sqrt(2 / (fan_in + fan_out))
        assert w.std().item() == pytest.approx(want, rel=0.04), (rec.name, w.std().item(), want)
        assert abs(w.mean().item()) < 0.04 * want and torch.all(model.get_submodule(rec.name).bias == 0)
    assert all(torch.equal(v, head[k]) for k, v in model.head.state_dict().items())


@pytest.mark.parametrize("call, match", [
    (lambda: wninit.initialize(MLP(4, 8, 2, 3), "fixup"), "choose one of proposed"),
    (lambda: wninit.initialize(MLP(4, 8, 2, 3), "proposed", direction="uniform"), "choose one of 'orthogonal'"),
    (lambda: wninit.initialize(MLP(4, 8, 2, 3), "datadep"), "needs a batch"),
    (lambda: wninit.initialize(MLP(4, 8, 2, 3, norm="none"), "proposed"), "no WN layer"),
    (lambda: wninit.initialize(MLP(4, 8, 2, 3, norm="bn"), "hanin"), "no WN layer"),
    (lambda: wninit.initialize(MLP(4, 8, 2, 3), "he"), "use 'pytorch-default'"),
])
def test_bad_input_is_one_clear_sentence(call, match):
    with pytest.raises(ValueError, match=match) as info:
        call()
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("scheme, api", [("proposed", "wninit"), ("proposed", "torch"), ("pytorch-default", "legacy"),
                                         ("orthogonal", None)])
def test_initialize_gives_the_same_parameters_on_any_number_of_threads(scheme, api, monkeypatch):
    # initialize draws every orthogonal direction first and runs the QRs side by side on torch's threads
    # (init.orthogonal_directions_): the parameters are those of one orthogonal_direction_ call per layer
    # in turn at one thread, bit for bit, at 1, 2 or 3 threads
    import wninit.init.schemes

    def params(threads: int, one_by_one: bool = False):
        if one_by_one:
            monkeypatch.setattr(wninit.init.schemes, "orthogonal_directions_",
                                lambda ws, gen: [wninit.init.gains.orthogonal_direction_(w, gen) for w in ws])
        torch.manual_seed(0)
        model = WideResNet(10, 1, 10, 3, "none" if api is None else "wn", api or "wninit")
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            wninit.initialize(model, scheme, generator=torch.Generator().manual_seed(5))
        finally:
            torch.set_num_threads(before)
        return [p.detach().clone() for p in model.parameters()]

    one, two, three, reference = params(1), params(2), params(3), params(1, one_by_one=True)
    for got in (one, two, three):
        assert len(got) == len(reference) and all(torch.equal(a, b) for a, b in zip(got, reference))
