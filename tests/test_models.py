import time

import pytest
import torch

import wninit
from wninit.models import ARCHS, WideResNet, build_model

SMALL = {"mlp": dict(depth=3, width=16), "cnn": dict(depth=3, width=8), "resnet": dict(depth=8, width=8),
         "wrn": dict(depth=10, k=2), "impala": dict(depth=10, width=4)}
CASES = [(arch, norm, scheme) for arch in ARCHS for norm in ("wn", "bn", "none")
         for scheme in (wninit.init.WN_SCHEMES if norm == "wn" else wninit.init.PLAIN_SCHEMES)]


@pytest.mark.parametrize("arch, norm, scheme", CASES)
def test_every_architecture_scheme_and_norm_trains(arch, norm, scheme):
    """timm-style smoke test: output shape, finite output, every parameter receives a gradient."""
    torch.manual_seed(0)
    model = build_model(arch, in_shape=(3, 8, 8), num_classes=5, norm=norm, **SMALL[arch])
    x = torch.randn(6, 3, 8, 8)
    wninit.initialize(model, scheme, direction="gaussian", batch=x, generator=torch.Generator().manual_seed(0))
    out = model(x)
    assert out.shape == (6, 5) and torch.isfinite(out).all()
    torch.nn.functional.cross_entropy(out, torch.arange(6) % 5).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def test_roles_are_declared_by_the_models():
    model = WideResNet(16, 2, 10)  # N = 2
    kinds = [wninit.get_role(m).kind for _, m in wninit.weight_normed_layers(model)]
    assert kinds.count("stem") == 1 and kinds.count("shortcut") == 3  # conv2_1 (k > 1), conv3_1, conv4_1
    assert kinds.count("block_in") == kinds.count("block_out") == 6
    assert wninit.get_role(model.head).kind == "head" and not wninit.is_weight_normed(model.head)
    assert len(kinds) == 16


def test_ten_thousand_layer_wrn_builds_and_initializes_on_cpu():
    """docs/method.md §7.3: WRN of 10,000 layers, N = 1666, k = 1; the README quotes the time printed here."""
    start = time.perf_counter()
    model = WideResNet(10000, 1, 10)
    built = time.perf_counter()
    records = wninit.initialize(model, "proposed", generator=torch.Generator().manual_seed(0))
    done = time.perf_counter()
    print(f"\nWRN-10000-1: build {built - start:.1f} s, initialize {done - built:.1f} s, {len(records)} WN layers")
    assert model.blocks_per_stage == 1666 and len(records) == 6 * 1666 + 1 + 2  # stage 1 has no shortcut at k=1
    conv2 = [r for r in records if r.role == "block_out"]
    assert all(abs(r.gamma - 1 / 1666) < 1e-15 for r in conv2)
    with torch.no_grad():
        assert torch.isfinite(model(torch.randn(1, 3, 8, 8))).all()


@pytest.mark.parametrize("call, match", [
    (lambda: wninit.models.ResNet(57, 10), "6N\\+2"),
    (lambda: wninit.models.ResNet(2, 10), "6N\\+2"),
    (lambda: wninit.models.WideResNet(41, 10, 10), "6N\\+4"),
    (lambda: wninit.models.MLP(784, 128, 0, 10), "depth must be an integer >= 1"),
    (lambda: wninit.models.CNN(3, 8, -1, 10), "depth must be an integer >= 1"),
    (lambda: wninit.models.MLP(784, 128, 2, 10, norm="ln"), "choose one of 'wn', 'bn', 'none'"),
    (lambda: build_model("vit", in_shape=(3, 8, 8), num_classes=3, depth=2), "choose one of mlp"),
])
def test_bad_architecture_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()
