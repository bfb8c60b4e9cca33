import pytest
import torch
from torch import nn

import wninit
from wninit.weightnorm import access as wnm

LAYERS = [lambda: nn.Linear(7, 5), lambda: nn.Conv1d(3, 4, 3), lambda: nn.Conv2d(3, 6, 3, padding=1),
          lambda: nn.Conv3d(2, 3, 3)]
INPUTS = [(4, 7), (4, 3, 9), (4, 3, 8, 8), (2, 2, 5, 5, 5)]


@pytest.mark.parametrize("api", wnm.APIS)
@pytest.mark.parametrize("make, shape", list(zip(LAYERS, INPUTS)))
def test_wrapping_preserves_the_function(api, make, shape):
    torch.manual_seed(0)
    layer, x = make(), torch.randn(shape)
    before = layer(x)
    wnm.weight_norm(layer, api)
    assert wnm.wn_api(layer) == api
    torch.testing.assert_close(layer(x), before)
    g, v = wnm.wn_g(layer), wnm.wn_v(layer)
    torch.testing.assert_close(g.detach(), v.detach().flatten(1).norm(dim=1))


@pytest.mark.parametrize("api", wnm.APIS)
def test_g_and_v_write_through_and_the_setters_return_what_they_set(api):
    layer = wnm.weight_norm(nn.Linear(4, 3), api)
    v = wnm.set_v_(layer, torch.eye(3, 4) * 5)  # row norms of v are irrelevant
    assert v is wnm.wn_v(layer) and torch.equal(v.detach(), torch.eye(3, 4) * 5)
    g = wnm.set_g_(layer, torch.tensor([1.0, 2.0, 3.0]))
    assert g.shape == (3,) and g.data_ptr() == wnm.wn_parameters(layer)[1].data_ptr()  # the parameter itself
    assert torch.equal(g.detach(), torch.tensor([1.0, 2.0, 3.0])) and torch.equal(wnm.wn_g(layer).detach(), g.detach())
    assert torch.equal(wnm.set_g_(layer, 0.5).detach(), torch.full((3,), 0.5))  # one number for every unit
    wnm.set_g_(layer, torch.tensor([1.0, 2.0, 3.0]))
    expected = torch.diag(torch.tensor([1.0, 2.0, 3.0])) @ torch.eye(3, 4)
    torch.testing.assert_close(wnm.effective_weight(layer).detach(), expected)
    torch.testing.assert_close(layer.weight.detach(), expected)  # legacy: the cached weight is refreshed
    x = torch.randn(2, 4)
    torch.testing.assert_close(layer(x), x @ expected.T + layer.bias)


@pytest.mark.parametrize("api", wnm.APIS)
def test_wn_parameters_are_the_raw_g_and_v_with_or_without_the_api_given(api):
    layer = wnm.weight_norm(nn.Conv2d(3, 4, 3), api)
    found, g, v = wnm.wn_parameters(layer)
    assert found == api and g.data_ptr() == wnm.wn_g(layer).data_ptr() and v is wnm.wn_v(layer)
    given = wnm.wn_parameters(layer, api)
    assert given[0] == api and given[1] is g and given[2] is v
    with pytest.raises(ValueError, match="not weight-normalized"):
        wnm.wn_parameters(nn.Linear(2, 2))


def test_wninit_layer_reads_like_a_plain_layer():
    layer = wnm.WNConv2d(3, 8, 3, padding=1)
    assert isinstance(layer, nn.Conv2d) and wnm.is_weight_normed(layer)
    assert dict(layer.named_parameters()).keys() == {"bias", "v", "g"}
    assert layer.weight.shape == (8, 3, 3, 3) and layer.g.shape == (8,)
    assert [p for p in wnm.gain_parameters(nn.Sequential(layer))] == [layer.g]


def test_every_parameter_gets_a_gradient_through_wn():
    layer = wnm.WNLinear(5, 3)
    layer(torch.randn(4, 5)).square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in layer.parameters())


def test_bad_wrapping_is_a_clear_error():
    with pytest.raises(ValueError, match="choose one of"):
        wnm.weight_norm(nn.Linear(2, 2), "fast")
    with pytest.raises(ValueError, match="nn.Linear or nn.Conv"):
        wnm.weight_norm(nn.BatchNorm1d(2))
    layer = wnm.weight_norm(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="already weight-normalized"):
        wnm.weight_norm(layer, "torch")
    with pytest.raises(ValueError, match="not weight-normalized"):
        wnm.wn_g(nn.Linear(2, 2))


ZERO_LAYERS = [(lambda: nn.Linear(7, 5), (4, 7)), (lambda: nn.Conv2d(3, 6, 3, padding=1), (2, 3, 5, 5)),
               (lambda: nn.ConvTranspose1d(4, 3, 3, stride=2), (2, 4, 6))]


@pytest.mark.parametrize("api", wnm.APIS)
@pytest.mark.parametrize("dim, whole", [(0, True), (0, False), (1, True), (1, False), (None, True)],
                         ids=["dim0-all-zero", "dim0-one-zero-unit", "dim1-all-zero", "dim1-one-zero-unit", "whole"])
@pytest.mark.parametrize("make, shape", ZERO_LAYERS, ids=["Linear", "Conv2d", "ConvTranspose1d"])
def test_a_zero_weight_wraps_without_nan_its_zero_units_get_the_constant_unit_direction(api, dim, whole, make, shape):
    torch.manual_seed(0)
    layer, x = make(), torch.randn(shape)
    with torch.no_grad():  # a zero-initialized head, or one unit of a layer at zero
        (layer.weight.zero_() if whole else layer.weight.movedim(dim or 0, 0)[1].zero_())
    w, before = layer.weight.detach().clone(), layer(x).detach()
    wnm.weight_norm(layer, api, dim)
    y = layer(x)
    torch.testing.assert_close(y.detach(), before)  # the wrapped layer computes what it did (NaN fails this)
    y.square().sum().backward()
    _, g, v = wnm.wn_parameters(layer)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in (g, v))
    units = wnm.wn_g(layer).numel()
    zero = w.norm().view(1) == 0 if dim is None else w.movedim(dim, 0).flatten(1).norm(dim=1) == 0
    assert zero.any() and torch.equal(wnm.wn_g(layer).detach() == 0, zero)
    v_units = v.detach().reshape(1, -1) if dim is None else v.detach().movedim(dim, 0).reshape(units, -1)
    n_u = v_units.shape[1]
    assert torch.equal(v_units[zero], torch.full((int(zero.sum()), n_u), n_u ** -0.5))  # unit norm, no RNG
    w_units = w.reshape(1, -1) if dim is None else w.movedim(dim, 0).reshape(units, -1)
    assert torch.equal(v_units[~zero], w_units[~zero])  # the other units as torch wraps them


@pytest.mark.parametrize("api", wnm.APIS)
def test_a_model_with_a_zero_head_initializes_without_nan(api):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
    nn.init.zeros_(model[2].weight)
    wninit.weight_norm(model, api)
    x = torch.randn(4, 6)
    assert torch.isfinite(model(x)).all()
    for scheme in ("proposed", "pytorch-default"):
        wninit.initialize(model, scheme)
        assert torch.isfinite(model(x)).all(), scheme


@pytest.mark.parametrize("to", wnm.APIS)
@pytest.mark.parametrize("dim", [0, None])
def test_a_plain_checkpoint_with_a_zero_weight_converts_to_wn_without_nan(to, dim):
    plain = nn.Linear(6, 4)
    with torch.no_grad():
        plain.weight[2].zero_() if dim == 0 else plain.weight.zero_()
    x = torch.randn(3, 6)
    model = wnm.weight_norm(nn.Linear(6, 4), to, dim)
    model.load_state_dict(wninit.convert_state_dict(plain.state_dict(), to=model))
    torch.testing.assert_close(model(x), plain(x))  # NaN fails this
    units = 1 if dim is None else 4
    v = wnm.wn_v(model).detach().reshape(units, -1)
    zero = plain.weight.detach().reshape(units, -1).norm(dim=1) == 0
    assert torch.equal(v[zero], torch.full((int(zero.sum()), v.shape[1]), v.shape[1] ** -0.5))
