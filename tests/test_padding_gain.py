"""The padding-aware gain (wninit.init.padding, docs/results.md): the per-unit RMS through the paper's 50-layer CNN on
7x7 maps, in expectation over the directions, stays within 10% of its input's with it, and falls to about 0.08
(0.949 per layer) with the paper's gain.

The expectation is propagated independently of the module's own coverage computation: per position, the energy a
conv passes on is sum_o g_o^2/n_u times the energy of the input taps that land on the map (the directions' rows are
unit vectors uniform on the sphere, their entries uncorrelated), which is torch's own zero-padded conv of the
energy map with a kernel of ones; the ReLU after it keeps half (gamma = 2 in g accounts for it). The g are read
from the initialized model, so the test checks the gains the model holds.
"""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from wninit import initialize, models
from wninit.errors import UserError
from wninit.init.padding import border_coverage, padding_aware_gains_
from wninit.weightnorm.access import weight_normed_layers, wn_g, wn_v


def _expected_rms(model, size=28):
    """Per-unit RMS of each ReLU output in expectation over the directions, for a white unit-variance input."""
    energy, rms = torch.ones(1, 1, size, size), []  # one input channel: energy per position = 1
    for _, conv in weight_normed_layers(model):
        if not isinstance(conv, nn.Conv2d):
            continue
        n_u = wn_v(conv)[0].numel()
        taps = F.conv2d(energy, torch.ones(1, 1, *conv.kernel_size, dtype=energy.dtype), stride=conv.stride,
                        padding=conv.padding)
        energy = 0.5 * float(wn_g(conv).detach().pow(2).sum()) / n_u * taps  # summed over the output channels
        rms.append(math.sqrt(float(energy.mean()) / conv.out_channels))
    return rms


def _cnn(seed=0, width=16, depth=50):
    torch.manual_seed(seed)
    model = models.CNN(1, width, depth, 10)
    initialize(model, "proposed", generator=torch.Generator().manual_seed(seed))
    return model


def test_the_padding_aware_gain_keeps_the_per_unit_rms_through_50_layers_on_7x7_maps():
    paper, aware = _cnn(), _cnn()
    coverages = padding_aware_gains_(aware, torch.randn(4, 1, 28, 28))
    assert len(coverages) == 50
    before, after = _expected_rms(paper), _expected_rms(aware)
    # layers 2..49 run on 7x7 maps: the ratio is from the first 7x7 map (the output of layer 1) to the last
    paper_ratio, aware_ratio = before[-1] / before[1], after[-1] / after[1]
    assert 0.9 <= aware_ratio <= 1.1, aware_ratio
    assert paper_ratio == pytest.approx(math.sqrt(0.90108) ** 48, rel=0.15), paper_ratio  # 0.949 per layer: ~0.08
    assert paper_ratio < 0.1


def test_border_coverage_is_the_perron_value_of_the_tap_count_operator():
    conv = nn.Conv2d(16, 16, 3, padding=1)
    # a 3-tap window on a path of n cells: tridiagonal ones, largest eigenvalue 1 + 2 cos(pi/(n+1)), per axis /3
    for n in (7, 8, 32):
        assert border_coverage(conv, (n, n)) == pytest.approx(((1 + 2 * math.cos(math.pi / (n + 1))) / 3) ** 2)
    assert border_coverage(nn.Conv2d(4, 4, 3, padding=0), (7, 7)) == 1.0
    # a stride-2 conv changes the size: the uniform profile's mean coverage, 14 -> 7, (7*3 - 1)/(7*3) per axis
    assert border_coverage(nn.Conv2d(4, 4, 3, stride=2, padding=1), (14, 14)) == pytest.approx((20 / 21) ** 2)


def test_what_the_padding_aware_gain_cannot_handle_is_named():
    with pytest.raises(UserError, match="circular"):
        border_coverage(nn.Conv2d(4, 4, 3, padding=1, padding_mode="circular"), (7, 7))
    with pytest.raises(UserError, match="Linear"):
        border_coverage(nn.Linear(3, 3), (7,))


def test_the_paper_default_is_unchanged():
    a, b = _cnn(1, depth=5), _cnn(1, depth=5)
    for (_, x), (_, y) in zip(weight_normed_layers(a), weight_normed_layers(b)):
        assert torch.equal(wn_g(x), wn_g(y))
    padding_aware_gains_(b, torch.randn(2, 1, 28, 28))
    assert not torch.equal(wn_g(weight_normed_layers(a)[3][1]), wn_g(weight_normed_layers(b)[3][1]))


def test_run_options_padding_gain_and_frozen_conv_biases(tmp_path):
    """RunConfig.padding_gain gives the trained model's build the padding-aware g; RunConfig.freeze_conv_bias holds
    every conv bias at its init, 0, through training (the remedy to the CNN's collapse, docs/results.md)."""
    from wninit.suite.train import RunConfig, fit

    base = RunConfig(dataset="digits", arch="cnn", width=4, depth=3, epochs=1, lr=0.05, momentum=0.9, batch_size=64,
                     schedule=0, threads=1)
    biases = {}
    for frozen in (False, True):
        out = tmp_path / str(frozen)
        fit(base.replace(freeze_conv_bias=frozen), out_dir=out)
        state = torch.load(next(out.glob("*.pt")), weights_only=False)
        state = state.get("model", state)
        biases[frozen] = [v for k, v in state.items() if k.startswith("features") and k.endswith("bias")]
    assert len(biases[True]) == 3 and all(float(b.abs().max()) == 0.0 for b in biases[True])
    assert any(float(b.abs().max()) > 0.0 for b in biases[False])
    assert base.replace(padding_gain=True).run_id != base.run_id and base.replace(padding_gain=False).run_id == base.run_id
