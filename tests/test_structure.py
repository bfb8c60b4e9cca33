"""Structure discovery (docs/method.md §3.7): discovered roles equal the suite's declared ones, bit for bit."""
import math

import pytest
import torch
from torch import nn
from torch.nn.utils.parametrizations import weight_norm as torch_wn

import wninit
from wninit.errors import UserError
from wninit.models import CNN, MLP, ResNet, WideResNet
from wninit.structure.roles import declared_role
from wninit.init.schemes import role_gamma
from wninit.structure.trace import TraceFailure, discover


def _declared_vs_discovered(model):
    found = discover(model)
    pairs = [(name, declared_role(m), found.roles.get(name)) for name, m in model.named_modules()
             if wninit.is_weight_normed(m)]
    assert pairs and all(d is not None for _, d, _ in pairs)
    return pairs


@pytest.mark.parametrize("model", [
    MLP(784, 16, 10, 10), MLP(784, 8, 1000, 10), CNN(3, 8, 10, 10), ResNet(20, 10, width=4), ResNet(56, 10, width=4),
    WideResNet(10, 1, 10), WideResNet(16, 2, 10), WideResNet(40, 1, 10), WideResNet(1000, 1, 10),
    WideResNet(16, 1, 10, wn_api="torch"), ResNet(20, 10, width=4, wn_api="legacy"),
], ids=lambda m: f"{type(m).__name__}-{getattr(m, 'depth', '')}-{sum(1 for _ in m.modules())}")
def test_discovered_roles_equal_declared_roles_and_gains_bit_for_bit(model):
    for name, declared, found in _declared_vs_discovered(model):
        assert found is not None, name
        assert (found.kind, found.stage, found.block, found.stage_blocks) == \
            (declared.kind, declared.stage, declared.block, declared.stage_blocks), name
        if declared.gamma is not None:  # a gamma the model's authors chose (ResNet's stem: 2), not a structure
            continue
        for scheme in ("proposed", "hanin", "proposed-backward"):
            assert role_gamma(found, scheme) == role_gamma(declared, scheme), (name, scheme)  # exact, not approx


def test_a_declared_gamma_wins_over_discovery():
    """ResNet declares gamma 2 for its stem (the reference ResNet class); discovery alone would give 1."""
    model = ResNet(20, 10, width=4)
    assert discover(model).roles["stem"].kind == "stem" and role_gamma(discover(model).roles["stem"]) == 1.0
    recs = {r.name: r for r in wninit.initialize(model, "proposed", discover=True)}
    assert recs["stem"].gamma == 2.0 and recs["stem"].source == "declared"


def test_initialize_with_forced_discovery_gives_todays_gains_bit_for_bit():
    a, b = WideResNet(16, 2, 10), WideResNet(16, 2, 10)
    ra = wninit.initialize(a, "proposed", generator=torch.Generator().manual_seed(0))
    rb = wninit.initialize(b, "proposed", generator=torch.Generator().manual_seed(0), discover=True)
    assert [(r.name, r.gamma, r.g) for r in ra] == [(r.name, r.gamma, r.g) for r in rb]
    wn_state = lambda m: {k: v for k, v in m.state_dict().items() if not k.startswith("head.")}  # head: plain, not initialized
    assert all(torch.equal(p, q) for p, q in zip(wn_state(a).values(), wn_state(b).values()))
    assert {r.source for r in rb} == {"declared"}  # declared roles win even when the model is traced


class _PreActBlock(nn.Module):
    def __init__(self, c, act):
        super().__init__()
        self.act = act
        self.conv1, self.conv2 = torch_wn(nn.Conv2d(c, c, 3, padding=1)), torch_wn(nn.Conv2d(c, c, 3, padding=1))

    def forward(self, x):
        return x + self.conv2(self.act(self.conv1(self.act(x))))


@pytest.mark.parametrize("act, moment", [(nn.ReLU(), 0.5), (nn.LeakyReLU(0.2), (1 + 0.04) / 2)])
def test_pre_activation_block_gets_gamma_from_the_energy_its_branch_receives(act, moment):
    """Pre-activation: the branch's last conv receives E[phi^2] of the stream, so gamma = 1/(B_k * E[phi^2])."""
    blocks = 5
    model = nn.Sequential(*[_PreActBlock(8, act) for _ in range(blocks)])
    recs = {r.name: r for r in wninit.initialize(model, "proposed")}
    assert recs["0.conv1"].gamma == pytest.approx(1 / moment, rel=1e-12)
    assert recs["0.conv2"].gamma == pytest.approx(1 / (blocks * moment), rel=1e-12)
    assert (recs["4.conv2"].role, recs["4.conv2"].block, recs["4.conv2"].stage_blocks) == ("block_out", 5, 5)


def test_two_stages_split_by_a_projection_and_a_layer_between():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.ModuleList(_PreActBlock(4, nn.ReLU()) for _ in range(3))
            self.down = torch_wn(nn.Conv2d(4, 8, 3, stride=2, padding=1))
            self.b = nn.ModuleList(_PreActBlock(8, nn.ReLU()) for _ in range(2))

        def forward(self, x):
            for blk in self.a:
                x = blk(x)
            x = self.down(x)
            for blk in self.b:
                x = blk(x)
            return x

    s = discover(Net())
    assert [(r.stage, r.block, r.stage_blocks) for r in s.sums] == [(1, 1, 3), (1, 2, 3), (1, 3, 3), (2, 1, 2), (2, 2, 2)]
    assert s.roles["down"].kind == "linear"  # nothing follows it: gamma 1


class _Untraceable(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = torch_wn(nn.Linear(6, 6)), torch_wn(nn.Linear(6, 6))
        wninit.set_role(self.fc1, "hidden")

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x))) if x.sum() > 0 else x


def test_untraceable_model_asks_for_an_example_input_and_is_placed_with_one():
    model = _Untraceable()
    with pytest.raises(UserError, match=r"torch.fx cannot trace _Untraceable .*\(fc2\): pass example_inputs="):
        wninit.initialize(model, "proposed")
    recs = {r.name: r for r in wninit.initialize(model, "proposed", example_inputs=torch.ones(2, 6))}
    assert (recs["fc1"].source, recs["fc2"].source) == ("declared", "discovered")
    assert recs["fc2"].gamma == 1.0  # nothing follows it on the path the input takes


def test_trace_failure_names_the_reason():
    with pytest.raises(TraceFailure, match="TraceError|symbolically traced"):
        discover(_Untraceable())


def test_a_layer_the_forward_never_calls_is_named():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.used, self.unused = torch_wn(nn.Linear(4, 4)), torch_wn(nn.Linear(4, 4))

        def forward(self, x):
            return torch.relu(self.used(x))

    model = Net()
    with pytest.warns(UserWarning, match="does not call them.*unused"):
        recs = {r.name: r for r in wninit.initialize(model)}
    assert recs["used"].source == "discovered" and recs["unused"].source == "default"


@pytest.mark.parametrize("bad, match", [
    (lambda m: wninit.set_role(m, "hidden"), "takes a Linear, Conv or ConvTranspose layer, got a Sequential"),
    (lambda m: wninit.set_role(m[1], "hidden"), "got a ReLU"),
    (lambda m: wninit.set_role(m[0], "block_out", block=1, stage_blocks=0.5), "stage_blocks must be a positive integer"),
    (lambda m: wninit.set_role(m[0], "block_out", block=1, stage_blocks=0), "stage_blocks must be a positive integer"),
    (lambda m: wninit.set_role(m[0], "block_out", block=4, stage_blocks=3), "past its stage's block count"),
    (lambda m: wninit.set_role(m[0], "hidden", gamma=-1.0), "gamma must be a positive number"),
    (lambda m: wninit.set_role(m[0], "nope"), "unknown role 'nope'"),
])
def test_bad_set_role_is_one_sentence_and_changes_nothing(bad, match):
    model = nn.Sequential(torch_wn(nn.Linear(4, 4)), nn.ReLU())
    before = {n: getattr(m, "wninit_role", None) for n, m in model.named_modules()}
    with pytest.raises(ValueError, match=match) as err:
        bad(model)
    assert "\n" not in str(err.value)
    assert {n: getattr(m, "wninit_role", None) for n, m in model.named_modules()} == before


def test_declared_gamma_wins():
    layer = wninit.set_role(torch_wn(nn.Linear(10, 10)), "hidden", gamma=3.0)
    (rec,) = wninit.initialize(nn.Sequential(layer, nn.ReLU()), "proposed")
    assert rec.gamma == 3.0 and rec.g == pytest.approx(math.sqrt(3.0), rel=1e-6)
