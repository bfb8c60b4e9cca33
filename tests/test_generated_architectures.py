"""Architectures generated at random (hypothesis) from the branch shapes wninit supports, each initialized with one
call and an example input: no exception from inside wninit, no NaN, and every stage's forward per-position norm
ratio within [0.8, 1.25] of its target on that input (docs/method.md §3.9, §3.10).

The pieces, on token streams (N, L, D): a residual branch Linear -> act -> Linear with an optional pre-activation,
a LayerNorm at its start, a per-channel branch scale, a sigmoid gate (squeeze-excitation style), a GLU, stochastic
depth around it; a dense layer ``cat(x, f(x))``; between stages a Linear transition and an activation.
"""
import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn.utils.parametrizations import weight_norm as torch_wn

import wninit
from wninit.structure.record import record
from wninit.structure.trace import discover
from zoo.mbconv import DropPath
from zoo.measure import stage_ratios

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]

ACTS = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU, "tanh": nn.Tanh, "leaky": lambda: nn.LeakyReLU(0.2)}
BAND = (0.8, 1.25)


class Branch(nn.Module):
    def __init__(self, d: int, h: int, act: str, pre: bool, norm: bool, scale: float | None, gate: str | None,
                 drop: bool):
        super().__init__()
        self.pre, self.norm = (ACTS[act]() if pre else None), (nn.LayerNorm(d) if norm else None)
        self.fc1 = torch_wn(nn.Linear(d, 2 * h if gate == "glu" else h))
        self.act, self.gate_kind = ACTS[act](), gate
        self.gate = torch_wn(nn.Linear(h, h)) if gate == "se" else None
        self.fc2 = torch_wn(nn.Linear(h, d))
        self.scale = nn.Parameter(torch.full((d,), scale)) if scale is not None else None
        self.drop = DropPath(0.2) if drop else None

    def forward(self, x):
        h = x
        if self.norm is not None:
            h = self.norm(h)
        if self.pre is not None:
            h = self.pre(h)
        h = self.fc1(h)
        if self.gate_kind == "glu":
            a, b = h.chunk(2, dim=-1)
            h = a * torch.sigmoid(b)
        else:
            h = self.act(h)
        if self.gate is not None:
            h = h * torch.sigmoid(self.gate(h.mean(1, keepdim=True)))
        h = self.fc2(h)
        if self.scale is not None:
            h = self.scale * h
        if self.drop is not None:
            h = self.drop(h)
        return x + h


class Dense(nn.Module):
    def __init__(self, d: int, growth: int, act: str):
        super().__init__()
        self.fc1, self.act, self.fc2 = torch_wn(nn.Linear(d, 2 * growth)), ACTS[act](), torch_wn(nn.Linear(2 * growth, growth))

    def forward(self, x):
        return torch.cat([x, self.fc2(self.act(self.fc1(x)))], -1)


@st.composite
def architectures(draw):
    d = draw(st.sampled_from([8, 12, 16]))
    layers: list[nn.Module] = [torch_wn(nn.Linear(6, d))]
    for stage in range(draw(st.integers(1, 3))):
        if stage:
            d_new = draw(st.sampled_from([8, 12, 16]))
            layers += [torch_wn(nn.Linear(d, d_new)), ACTS[draw(st.sampled_from(sorted(ACTS)))]()]
            d = d_new
        dense = draw(st.booleans()) and draw(st.booleans())  # a dense stage a quarter of the time
        for _ in range(draw(st.integers(1, 4))):
            act = draw(st.sampled_from(sorted(ACTS)))
            if dense:
                growth = draw(st.sampled_from([4, 8]))
                layers.append(Dense(d, growth, act))
                d += growth
            else:
                layers.append(Branch(d, draw(st.sampled_from([8, 16, 24])), act, draw(st.booleans()), draw(st.booleans()),
                                     draw(st.sampled_from([None, None, 0.3, 1.0])),
                                     draw(st.sampled_from([None, None, "se", "glu"])), draw(st.booleans())))
    layers.append(torch_wn(nn.Linear(d, 3)))
    seed = draw(st.integers(0, 2**16))
    return nn.Sequential(*layers), seed


@settings(max_examples=200, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(architectures())
def test_generated_architectures_initialize_within_the_band(arch):
    model, seed = arch
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        for m in model.modules():  # a fresh draw of the model's own parameters (LayerNorm, scales stay as built)
            if isinstance(m, nn.Linear):
                m.reset_parameters()
    x = torch.randn(2, 5, 6, generator=torch.Generator().manual_seed(seed))
    records = wninit.initialize(model, "proposed", example_inputs=x, generator=torch.Generator().manual_seed(seed))
    assert all(r.source == "discovered" for r in records)  # every WN layer placed, none at the default
    out = record(model, x).output
    assert torch.isfinite(out).all()
    for stage in stage_ratios(model, discover(model, example_inputs=x), x):
        assert BAND[0] <= stage.relative <= BAND[1], (stage, model)
        assert math.isfinite(stage.backward)
