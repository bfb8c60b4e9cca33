"""The model zoo (tests/zoo): each public architecture builds, runs forward and backward at a cost the CI
machine affords, and is weight-normed on exactly the layers its docstring names."""
import pytest
import torch
from torch import nn

import wninit
from wninit.weightnorm.access import wn_api
from zoo import EXPECTED_WN_LAYERS, ZOO, count_weight_normed, is_weight_normed
from zoo._wn import WN_KINDS, weight_norm_every_layer

OUTPUT_SHAPE = {"resnet50": (2, 10), "preact_resnet": (2, 10), "hifigan_generator": (1, 1, 8 * 256),
                "wavenet": (2, 32, 256), "impala_cnn": (2, 256), "resnext": (2, 10), "mobilenet_v1": (2, 10),
                "mixer": (2, 10)}
DEFAULT_API = {name: "legacy" if name == "hifigan_generator" else "torch" for name in ZOO}
# The zoo's models are test inputs: one forward+backward of each stays under this many FLOPs (counted, so the
# bound holds on any machine at any load; the largest, impala_cnn, counts 1.1e9, about 0.15 s on one core).
MAX_FLOPS = 2e9


pytestmark = pytest.mark.usefixtures("one_thread")


def _built(name, **kw):
    build, shape = ZOO[name]
    torch.manual_seed(0)
    return build(**kw), torch.randn(shape)


@pytest.mark.parametrize("name", ZOO)
def test_forward_shape_finite_and_every_parameter_gets_a_gradient(name):
    model, x = _built(name)
    y = model(x)
    assert tuple(y.shape) == OUTPUT_SHAPE[name]
    assert torch.isfinite(y).all()
    y.square().mean().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, f"{pname} got no gradient"
        assert torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, f"{pname}: gradient {p.grad}"


@pytest.mark.parametrize("name", ZOO)
def test_forward_backward_is_cheap(name):
    from torch.utils.flop_counter import FlopCounterMode

    model, x = _built(name)
    with FlopCounterMode(display=False) as counter:
        model(x).square().mean().backward()
    assert 0 < counter.get_total_flops() < MAX_FLOPS


@pytest.mark.parametrize("api", ["torch", "legacy"])
@pytest.mark.parametrize("name", ZOO)
def test_every_linear_and_conv_is_weight_normed(name, api):
    model, _ = _built(name, api=api)
    wn_kinds = [m for m in model.modules() if isinstance(m, WN_KINDS)]
    assert all(is_weight_normed(m) for m in wn_kinds)
    assert count_weight_normed(model) == len(wn_kinds) == EXPECTED_WN_LAYERS[name]
    listed = wninit.weight_normed_layers(model)
    assert len(listed) == EXPECTED_WN_LAYERS[name]
    assert {wn_api(m) for _, m in listed} == {api}


@pytest.mark.parametrize("name", ZOO)
def test_default_api_is_the_documented_one(name):
    model, _ = _built(name)
    assert {wn_api(m) for _, m in wninit.weight_normed_layers(model)} == {DEFAULT_API[name]}


def test_hifigan_weight_norms_its_four_transposed_convs_per_input_channel():
    model, _ = _built("hifigan_generator")
    ups = [m for _, m in wninit.weight_normed_layers(model) if isinstance(m, nn.ConvTranspose1d)]
    assert len(ups) == 4
    # torch's default dim=0 is the first weight axis, the input channels of a transposed conv
    assert all(m.weight_g.shape == (m.in_channels, 1, 1) for m in ups)


def test_wavenet_is_causal():
    model, x = _built("wavenet")
    t = 100
    x.requires_grad_(True)
    model(x)[:, :, t].sum().backward()
    assert x.grad[:, :, t + 1:].abs().sum() == 0
    assert x.grad[:, :, t].abs().sum() > 0


def test_unknown_api_is_one_sentence():
    with pytest.raises(ValueError, match="unknown weight-norm api 'wninit'"):
        weight_norm_every_layer(nn.Linear(2, 2), "wninit")
