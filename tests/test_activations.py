"""gamma per activation = 1/E[phi(z)^2], z ~ N(0, 1) (docs/method.md §3.7): closed forms, quadrature, and the norm kept."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm as torch_wn

import wninit
from wninit.structure.activations import (activation_of_module, register_activation, second_moment,
                                          snake_second_moment)


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
    with pytest.warns(UserWarning, match=r"knows no second moment .*a product of its output with a function of "
                                         r"itself after 0\)"):
        (rec,) = wninit.initialize(model, "proposed")
    # unknown until declared: named in the rule and the warning, never a silent "nothing follows"
    assert rec.gamma == 1.0 and rec.rule == ("a product of its output with a function of itself follows: no known "
                                             "second moment, taken as 1 (outside the theory)")
    register_activation(Swish2, 0.4, name="swish2")
    try:
        (rec,) = wninit.initialize(model, "proposed")
        assert rec.gamma == pytest.approx(2.5) and rec.rule.startswith("swish2 follows")
    finally:
        from wninit.structure.activations import _CUSTOM
        _CUSTOM.pop(Swish2)


class Sine(nn.Module):
    def forward(self, x):
        return torch.sin(3.0 * x)


@pytest.mark.parametrize("by_running", [False, True])
def test_an_op_of_no_known_moment_after_a_layer_is_named_never_silent(by_running):
    """`torch.sin` after a WN layer: the layer is named in one warning with the op, and its rule says the op's
    factor is taken as 1 (the scale before it, 3, is still undone) and that it is outside the theory; a known
    activation is not flagged."""
    model = nn.Sequential(torch_wn(nn.Linear(8, 8)), Sine(), torch_wn(nn.Linear(8, 8)), nn.Tanh(),
                          torch_wn(nn.Linear(8, 4)))
    x = {"example_inputs": torch.randn(2, 8)} if by_running else {}
    with pytest.warns(UserWarning, match=r"knows no second moment for what follows 1 weight-normed layer\(s\) of "
                                         r"Sequential \(torch.sin after 0\)"):
        records = {r.name: r for r in wninit.initialize(model, "proposed", **x)}
    assert records["0"].rule == "torch.sin follows: no known second moment, taken as 1 (outside the theory)"
    assert records["0"].gamma == pytest.approx(1 / 9)
    assert records["2"].rule.startswith("tanh follows") and "outside" not in records["2"].rule


@pytest.mark.parametrize("alpha,beta", [(1.0, None), (0.3, None), (2.5, None), (1.0, 0.5)])
def test_snake_moment_equals_quadrature(alpha, beta):
    """The closed form (docs/method.md §3.7) against 96-node Gauss-Hermite quadrature of the function itself."""
    b = alpha if beta is None else beta
    expected = second_moment(lambda z: z + torch.sin(alpha * z).square() / b)
    assert snake_second_moment(alpha, beta) == pytest.approx(expected, rel=1e-9)


class ChannelSnake(nn.Module):
    """Snake with a per-channel alpha (as DAC's): its moment depends on the module's parameters."""

    def __init__(self, channels: int):
        super().__init__()
        self.alpha = nn.Parameter(torch.linspace(0.5, 2.0, channels))

    def forward(self, x):
        return x + torch.sin(self.alpha * x).square() / self.alpha


def test_a_moment_that_depends_on_the_module_is_registered_as_a_function_of_it():
    model = nn.Sequential(torch_wn(nn.Linear(8, 8)), ChannelSnake(8), torch_wn(nn.Linear(8, 8)))
    register_activation(ChannelSnake, lambda m: snake_second_moment(m.alpha), name="snake")
    try:
        rec = wninit.initialize(model, "proposed")[0]
    finally:
        from wninit.structure.activations import _CUSTOM
        _CUSTOM.pop(ChannelSnake)
    moment = float(sum(snake_second_moment(a) for a in torch.linspace(0.5, 2.0, 8)) / 8)  # the channels' mean
    assert rec.rule.startswith("snake follows") and rec.gamma == pytest.approx(1 / moment, rel=1e-9)


def test_transformers_snake_is_known_without_registration():
    """DAC's Snake1d (transformers): every layer it follows gets gamma 1/E[snake(z)^2] (alpha 1 at init)."""
    pytest.importorskip("transformers")
    from zoo.hf import HF_ZOO

    model, x = HF_ZOO["hf_dac"]()
    # what follows its quantizer's input projections (a commitment loss) has no known moment: named, not skipped
    with pytest.warns(UserWarning, match=r"mse_loss after quantizer\.quantizers\.0\.in_proj"):
        records = list(wninit.explain(model, "proposed", example_inputs=x, print_table=False))
    followed = [r for r in records if r.rule.startswith("snake follows")]
    assert len(followed) >= 12 and all(r.gamma == pytest.approx(1 / snake_second_moment(1.0), rel=1e-6)
                                       for r in followed)
    assert not any("nothing follows" in r.rule and r.role in ("block_in", "hidden") for r in records)


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
