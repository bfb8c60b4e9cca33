"""gamma per activation = 1/E[phi(z)^2], z ~ N(0, 1) (docs/method.md §3.7): closed forms, quadrature, and the norm kept."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm as torch_wn

import wninit
from wninit.structure.activations import activation_of_module, register_activation, second_moment


def test_relu_and_leaky_relu_closed_forms():
    assert activation_of_module(nn.ReLU()).second_moment() == 0.5  # exactly: gamma 2, the paper's case
    for a in (0.01, 0.1, 0.2):
        assert activation_of_module(nn.LeakyReLU(a)).second_moment() == (1 + a * a) / 2


@pytest.mark.parametrize("module", [nn.GELU(), nn.GELU("tanh"), nn.SiLU(), nn.Tanh(), nn.Sigmoid(), nn.ELU(),
                                    nn.Mish(), nn.Softplus(), nn.LeakyReLU(0.3)])
def test_quadrature_moment_equals_monte_carlo(module):
    """1e6 Gaussian draws (seed 0): the standard error of the mean of phi(z)^2 is < 0.002; allow 4 of them."""
    z = torch.randn(1_000_000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    samples = module(z).square()
    tol = 4 * float(samples.std()) / 1000
    assert activation_of_module(module).second_moment() == pytest.approx(float(samples.mean()), abs=tol)


def test_gelu_gamma_is_about_2_35():
    assert 1 / activation_of_module(nn.GELU()).second_moment() == pytest.approx(2.35, abs=0.01)


def test_moment_over_a_non_negative_input():
    assert second_moment(torch.relu, nonnegative_input=True) == pytest.approx(1.0, rel=1e-12)


@pytest.mark.parametrize("act", [nn.GELU(), nn.Tanh(), nn.LeakyReLU(0.1), nn.SiLU()])
def test_layer_followed_by_activation_keeps_the_norm_it_passes_on(act):
    """A 1024-wide WN layer then phi keeps ||x||^2 within 5% at the activation's fixed point: inputs of per-unit
    variance q* = E[phi(z)^2], so that the pre-activations have unit variance (docs/method.md §3.7)."""
    layer = torch_wn(nn.Linear(1024, 1024))
    model = nn.Sequential(layer, act)
    (rec,) = wninit.initialize(model, "proposed", generator=torch.Generator().manual_seed(0))
    assert rec.gamma == pytest.approx(1 / activation_of_module(act).second_moment(), rel=1e-12)
    x = torch.randn(64, 1024, generator=torch.Generator().manual_seed(1)) * math.sqrt(1 / rec.gamma)
    with torch.no_grad():
        ratio = model(x).square().sum(1) / x.square().sum(1)
    assert float(ratio.mean()) == pytest.approx(1.0, rel=0.05)


class Swish2(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(2 * x)


def test_register_a_custom_activation_class():
    model = nn.Sequential(torch_wn(nn.Linear(8, 8)), Swish2())
    (rec,) = wninit.initialize(model, "proposed")
    assert rec.rule == "nothing follows" and rec.gamma == 1.0  # unknown module: not an activation until declared
    register_activation(Swish2, 0.4, name="swish2")
    try:
        (rec,) = wninit.initialize(model, "proposed")
        assert rec.gamma == pytest.approx(2.5) and rec.rule.startswith("swish2 follows")
    finally:
        from wninit.structure.activations import _CUSTOM
        _CUSTOM.pop(Swish2)


def test_register_activation_rejects_a_bad_moment():
    with pytest.raises(ValueError, match="second_moment must be > 0"):
        register_activation(Swish2, -1.0)


def test_functional_leaky_relu_slope_is_read_from_the_call():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch_wn(nn.Linear(8, 8))

        def forward(self, x):
            return F.leaky_relu(self.fc(x), 0.1)

    (rec,) = wninit.initialize(Net(), "proposed")
    assert rec.gamma == pytest.approx(2 / 1.01, rel=1e-12) and math.isfinite(rec.g)
