"""wninit.weight_norm(model, remove_batchnorm=True) on BatchNorms with a fused activation: the activation stays.

The fused module below is written from the public description of timm's ``BatchNormAct2d`` (a BatchNorm2d
subclass that normalizes, then applies a ``drop`` child, then an ``act`` child), not from its code.
"""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import wninit
from wninit.errors import UserError
from wninit.weightnorm import access as wnm


class BatchNormAct2d(nn.BatchNorm2d):
    """BatchNorm2d with its activation fused in: normalize, drop, activate."""

    def __init__(self, channels, act=nn.ReLU, drop=nn.Identity):
        super().__init__(channels)
        self.drop, self.act = drop(), act()

    def forward(self, x):
        return self.act(self.drop(super().forward(x)))


class FunctionalBNAct(nn.BatchNorm2d):
    """A fused BatchNorm whose activation is a function call, no child module to keep."""

    def forward(self, x):
        return F.relu(super().forward(x))


class ScaledBN(nn.BatchNorm2d):
    """A fused BatchNorm whose forward applies more than its one child."""

    def __init__(self, channels):
        super().__init__(channels)
        self.act = nn.ReLU()

    def forward(self, x):
        return 2 * self.act(super().forward(x))


class InitOnlyBN(nn.BatchNorm2d):
    """A subclass that only changes the init: its forward is torch's."""

    def reset_parameters(self):
        super().reset_parameters()
        nn.init.constant_(self.weight, 0.5)


def preact_net(norm=BatchNormAct2d, **kw):
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), norm(8, **kw), nn.Conv2d(8, 8, 3, padding=1),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))


@pytest.mark.parametrize("api", wnm.APIS)
@pytest.mark.parametrize("act", [nn.ReLU, nn.GELU, nn.SiLU])
def test_a_fused_batchnorm_gives_way_to_its_own_activation(api, act):
    model, x = preact_net(act=act), torch.randn(2, 3, 8, 8)
    fused = model[1].act
    wninit.weight_norm(model, api, remove_batchnorm=True)
    assert model[1] is fused  # the activation module itself, where the BatchNorm was
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    with torch.no_grad():
        hidden = model[0](x)
        torch.testing.assert_close(model(x), model[5](model[4](model[3](model[2](act()(hidden))))))
    records = wninit.initialize(model, "proposed")  # the activation is seen: the stem's gamma is the ReLU's 2
    if act is nn.ReLU:
        assert records[0].gamma == 2.0 and records[0].source == "discovered"


def test_an_identity_activation_and_an_init_only_subclass_become_identity():
    model = preact_net(act=nn.Identity)
    wninit.weight_norm(model, remove_batchnorm=True)
    assert type(model[1]) is nn.Identity
    model = preact_net(norm=InitOnlyBN)
    wninit.weight_norm(model, remove_batchnorm=True)
    assert type(model[1]) is nn.Identity


@pytest.mark.parametrize("norm, kw", [(FunctionalBNAct, {}), (ScaledBN, {}),
                                      (BatchNormAct2d, {"drop": lambda: nn.Dropout(0.1)})],
                         ids=["functional-activation", "more-than-its-child", "drop-and-act"])
def test_a_fused_batchnorm_whose_activation_cannot_be_identified_is_refused_by_name(norm, kw):
    model = preact_net(norm, **kw)
    before = {n: type(m) for n, m in model.named_modules()}
    with pytest.raises(UserError, match=rf"'1' \({norm.__name__}\).*exclude it") as info:
        wninit.weight_norm(model, remove_batchnorm=True)
    assert "\n" not in str(info.value)
    assert {n: type(m) for n, m in model.named_modules()} == before and not wnm.weight_normed_layers(model)
    wninit.weight_norm(model, remove_batchnorm=True, exclude=["1"])  # the way out the sentence gives
    assert type(model[1]) is norm and wnm.is_weight_normed(model[0])
