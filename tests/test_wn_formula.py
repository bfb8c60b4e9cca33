"""The weight-norm formula, once (wninit.weightnorm.formula): ``w_u = g_u v_u/||v_u||`` per unit along ``dim``.

Claims: both forms give every unit the norm ``g_u`` and the direction of ``v_u``, checked slice by slice in
float64; the fused form is torch's own weight norm bit for bit; the composite is twice differentiable; and no
other module of src/ calls ATen's weight-norm kernel (a second copy of the formula fails here).
"""
import re
from pathlib import Path

import pytest
import torch
from torch import nn

from wninit.weightnorm.formula import unit_norms, wn_weight

SRC = Path(__file__).resolve().parents[1] / "src" / "wninit"
# (v's shape, dim): output units of a Linear / Conv, a ConvTranspose's output channels, the whole weight
CASES = [((5, 7), 0), ((6, 3, 3, 3), 0), ((4, 6, 3), 1), ((3, 4, 2, 2), 2), ((5, 7), None)]


def _slices(t: torch.Tensor, dim):
    return [t.reshape(-1)] if dim is None else list(t.movedim(dim, 0).flatten(1))


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("shape, dim", CASES)
def test_every_unit_has_norm_g_and_the_direction_of_v(shape, dim, fused):
    gen = torch.Generator().manual_seed(0)
    v = torch.randn(shape, generator=gen)
    units = 1 if dim is None else shape[dim]
    g = torch.rand(units, generator=gen) + 0.5
    w = wn_weight(v, g, dim, fused=fused)
    assert w.shape == v.shape
    for g_u, v_u, w_u in zip(g.double(), _slices(v.double(), dim), _slices(w.double(), dim)):
        torch.testing.assert_close(w_u, g_u * v_u / v_u.norm(), rtol=1e-6, atol=1e-7)  # float32 rounding


def test_a_number_is_one_gain_for_every_unit():
    v = torch.randn(4, 9, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(wn_weight(v, 0.75, fused=False).norm(dim=1), torch.full((4,), 0.75))
    torch.testing.assert_close(unit_norms(v, None), v.norm().view(1))


@pytest.mark.parametrize("dim", [0, 1, None])
def test_fused_is_torchs_weight_norm_bit_for_bit(dim):
    torch.manual_seed(0)
    layer = torch.nn.utils.parametrizations.weight_norm(nn.ConvTranspose1d(4, 6, 3), dim=dim)
    with torch.no_grad():
        layer.parametrizations.weight.original0.uniform_(0.5, 2.0)  # g != ||v||
    g, v = layer.parametrizations.weight.original0, layer.parametrizations.weight.original1
    assert torch.equal(wn_weight(v, g, dim), layer.weight)


def test_composite_is_twice_differentiable():
    gen = torch.Generator().manual_seed(2)
    v = torch.randn(3, 4, dtype=torch.float64, generator=gen, requires_grad=True)
    g = torch.rand(3, dtype=torch.float64, generator=gen).add(0.5).requires_grad_(True)
    assert torch.autograd.gradgradcheck(lambda v, g: wn_weight(v, g, fused=False), (v, g))


def test_no_other_module_calls_the_weight_norm_kernel():
    """The weights a model sees are computed in one place. The weight-norm benchmark is the one other caller: it
    times torch's bare kernel beside wn_weight, which is its job, and computes no model's weights."""
    kernel = re.compile(r"torch\._weight_norm(_interface)?\(")
    callers = sorted(str(p.relative_to(SRC)) for p in SRC.rglob("*.py") if kernel.search(p.read_text()))
    assert callers == ["suite/bench/wn.py", "weightnorm/formula.py"], (
        f"w = g v/||v|| computed outside weightnorm.formula.wn_weight in {callers}")
