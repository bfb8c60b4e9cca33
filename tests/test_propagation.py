"""wninit.diagnostics.propagation: exact on a hand-checked model, and the paper's per-stage bound on real WRNs."""
import math
from pathlib import Path

import pytest
import torch
from torch import nn

import wninit
from wninit.suite.cli import main
from wninit.diagnostics import PropagationTable, propagation
from wninit.errors import UserError
from wninit.models import MLP, WideResNet
from wninit.structure.roles import probe_points

SQRT2, SQRTE = math.sqrt(2), math.sqrt(math.e)
# Stated tolerance of the per-stage bound, 10% on each side. Measured over 10 seeds of WRN-100-1 on 4 images
# 3x32x32, the per-stage forward factors lie in [1.32, 1.78]: k=1 leaves 16 channels, and at finite width the
# cross term <h, F(h)> of each block does not average out with depth (std ~0.08 per stage); besides, zero
# padding loses energy at the borders of the 8x8 maps of stage 3 (its factor averages 1.44, not ~1.6).
TOL = 0.10
LOW, HIGH = SQRT2 / (1 + TOL), SQRTE * (1 + TOL)


def test_ratios_equal_a_direct_computation():
    """Forward ||h_i||/||x||, backward ||dL/dh_i||/||dL/dh_L|| per sample, for a hand-built model."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 5), nn.Tanh(), nn.Linear(5, 3))
    x = torch.randn(7, 6)
    table = propagation(model, x, points=["1", model[3]], seed=3)
    h1 = torch.relu(model[0](x)).detach().requires_grad_(True)
    h2 = torch.tanh(model[2](h1))
    out = model[4](h2)
    cot = torch.randn(out.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64).float()
    g1, g2 = torch.autograd.grad(out, [h1, h2], cot)
    fwd = [h.norm(dim=1) / x.norm(dim=1) for h in (h1, h2)]
    bwd = [g.norm(dim=1) / g2.norm(dim=1) for g in (g1, g2)]
    assert [r.name for r in table] == ["1", "3"] and [r.index for r in table] == [1, 2]
    for row, f, b in zip(table, fwd, bwd):
        assert row.forward_mean == pytest.approx(f.mean().item(), rel=1e-5)
        assert row.forward_std == pytest.approx(f.std(unbiased=False).item(), rel=1e-4)
        assert row.backward_mean == pytest.approx(b.mean().item(), rel=1e-5)
    assert table.rows[1].backward_mean == 1.0 and table.rows[1].backward_std == 0.0
    # per element: x has 6 entries per sample, h1 8, h2 5
    assert table.rows[0].forward_rms_mean == pytest.approx(table.rows[0].forward_mean * math.sqrt(6 / 8), rel=1e-6)
    assert all(p.grad is None for p in model.parameters())  # no side effect on the model


def test_shared_module_gives_one_row_per_call(tmp_path):
    class Net(nn.Module):  # one ReLU module used twice, as torchvision's ResNets do
        def __init__(self):
            super().__init__()
            self.a, self.b, self.relu = nn.Linear(4, 4), nn.Linear(4, 2), nn.ReLU()

        def forward(self, x):
            return self.b(self.relu(self.a(self.relu(x))))

    table = propagation(Net(), torch.randn(5, 4), points=["relu"])
    assert [r.name for r in table] == ["relu", "relu#2"]
    text = str(table)
    assert "relu#2" in text and "forward" in text and "fwd/sample" in table.render(all_normalizations=True)
    path = table.to_csv(tmp_path / "t.csv")
    header, *lines = path.read_text().splitlines()
    assert header.split(",") == list(PropagationTable.columns()) and len(lines) == 2


def test_mlp_proposed_keeps_forward_ratio_near_one():
    """docs/method.md §3.1: each hidden layer preserves ||h||, so ||h_i||/||x|| stays ~1 over 20 layers (width 512)."""
    model = MLP(784, 512, 20, 10)
    wninit.initialize(model, "proposed", generator=torch.Generator().manual_seed(0))
    table = propagation(model, torch.randn(32, 1, 28, 28, generator=torch.Generator().manual_seed(1)))
    assert len(table) == 20
    fwd = table.column("forward_mean")
    print("MLP-20 proposed forward:", [round(f, 3) for f in fwd])
    assert all(0.8 < f < 1.2 for f in fwd)


def _stage_factors(model: WideResNet, x: torch.Tensor):
    """Each stage's own factor: forward (per position) and backward ratio at its end over its start.

    The start of stage 1 is the stem's output, of stage k the end of stage k-1. Per position (norm over
    channels / sqrt(H*W)): the proposed gains preserve the channel norm at each kept position, so this
    undoes the stride-2 loss of 3/4 of the positions (docs/method.md §3.4). Backward, the width-doubling stages
    also carry the forward gain's known backward factor sqrt(C_in/C_out) (docs/method.md §3.3), undone here.
    """
    names = ["stem"] + [n for n, _ in probe_points(model)]
    table = propagation(model, x, points=names)
    n = model.blocks_per_stage
    ends = [0, n, 2 * n, 3 * n]
    pos, rms, bwd = (table.column(c) for c in ("forward_position_mean", "forward_rms_mean", "backward_mean"))
    channels = [model.stem.out_channels] + [model.blocks[e - 1].conv2.out_channels for e in ends[1:]]
    forward = [pos[ends[k + 1]] / pos[ends[k]] for k in range(3)]
    per_element = [rms[ends[k + 1]] / rms[ends[k]] for k in range(3)]
    backward = [bwd[ends[k]] / bwd[ends[k + 1]] * math.sqrt(channels[k + 1] / channels[k]) for k in range(3)]
    return forward, backward, per_element


def _wrn(depth, scheme, seed, dtype=torch.float32):
    torch.manual_seed(seed)
    model = WideResNet(depth, 1, 10)
    wninit.initialize(model, scheme, generator=torch.Generator().manual_seed(seed))
    return model.to(dtype)


@pytest.mark.parametrize("depth,seeds", [(100, (0, 1, 2)), (1000, (0,))])
def test_wrn_proposed_stays_within_the_per_stage_bound(depth, seeds):
    """docs/method.md §3.4: with the proposed init each stage multiplies the norm by c in [sqrt(2), sqrt(e)], forward and
    backward, at any depth (B = 16 and 166 blocks per stage)."""
    for seed in seeds:
        x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(100 + seed))
        forward, backward, per_element = _stage_factors(_wrn(depth, "proposed", seed), x)
        print(f"WRN-{depth}-1 proposed seed {seed}: stage factors forward (per position) "
              f"{[round(f, 3) for f in forward]}, backward {[round(b, 3) for b in backward]}, per element "
              f"{[round(f, 3) for f in per_element]}; bound [{SQRT2:.3f}, {SQRTE:.3f}] +-{TOL:.0%}")
        assert all(LOW <= f <= HIGH for f in forward + backward)
        # per element, the width-doubling stages 2 and 3 show c*sqrt(C_in/C_out): why per position is the measure
        assert all(LOW / SQRT2 <= f <= HIGH / SQRT2 for f in per_element[1:])


def test_wrn_pytorch_default_grows_without_bound():
    """docs/method.md §3.4: with g = ||v|| (pytorch-default, orthogonal v) each block adds ||h||^2/2, a factor 1.5^(B/2)
    per stage: ~26 for B = 16, ~4e14 for B = 166. Run in float64: at depth 1000 float32 overflows."""
    x = torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(100), dtype=torch.float64)
    first_stage = {}
    for depth in (100, 1000):
        forward, backward, _ = _stage_factors(_wrn(depth, "pytorch-default", 0, torch.float64), x)
        print(f"WRN-{depth}-1 pytorch-default: stage factors forward {[f'{f:.3g}' for f in forward]}, "
              f"backward {[f'{b:.3g}' for b in backward]}")
        assert all(f > 3 * SQRTE for f in forward + backward)
        first_stage[depth] = forward[0]
    assert first_stage[1000] > 1e6 * SQRTE
    assert math.log(first_stage[1000]) > 5 * math.log(first_stage[100])  # theory: 166/16 = 10.4 times the log


def test_no_measuring_points_is_a_user_error():
    with pytest.raises(UserError, match="found no weight-normed layer or residual sum"):
        propagation(nn.Sequential(nn.Linear(3, 3)), torch.randn(2, 3))
    with pytest.raises(UserError, match="no module named 'nope'"):
        propagation(nn.Sequential(nn.Linear(3, 3)), torch.randn(2, 3), points=["nope"])
    with pytest.raises(UserError, match="not part of the model"):
        propagation(nn.Sequential(nn.Linear(3, 3)), torch.randn(2, 3), points=[nn.ReLU()])


def test_wrong_input_shape_is_a_user_error():
    model = WideResNet(10, 1, 10)
    with pytest.raises(UserError, match=r"rejected inputs of shape \(2, 1, 8, 8\).*expecting \(N, 3, \.\.\.\)") as err:
        propagation(model, torch.randn(2, 1, 8, 8))
    assert "\n" not in str(err.value)
    with pytest.raises(UserError, match="expecting 784 features"):
        propagation(MLP(784, 16, 2, 10), torch.randn(2, 1, 20, 20))
    with pytest.raises(UserError, match="non-empty batch tensor"):
        propagation(model, torch.randn(3))


def test_diagnose_cli_prints_the_table_and_saves_csv_and_png(tmp_path, capsys):
    args = ["diagnose", "--arch", "wrn", "--depth", "16", "--batch", "2", "--input-shape", "3,16,16", "--out", str(tmp_path)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "blocks.5" in out and "forward" in out
    lines = (tmp_path / "propagation_proposed.csv").read_text().splitlines()
    assert lines[0].startswith("index,name,shape,forward_mean") and len(lines) == 1 + 6  # 3 stages x 2 blocks
    assert (tmp_path / "signal_propagation.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["diagnose", "--arch", "wrn", "--depth", "15"]) == 2
    assert "6N+4" in capsys.readouterr().err


class _Untraceable(nn.Module):
    def __init__(self):
        super().__init__()
        self.layer = wninit.weight_norm(nn.Linear(3, 3))

    def forward(self, x):
        return self.layer(x) if x.sum() > 0 else x  # data-dependent control flow: torch.fx cannot trace it


def test_untraceable_unmarked_model_is_discovered_on_its_batch():
    """torch.fx cannot trace it; the batch is an example input, so discovery runs the model on it (§3.9)."""
    assert [r.name for r in propagation(_Untraceable(), torch.ones(2, 3))] == ["layer"]
    with pytest.raises(UserError, match="found no weight-normed layer or residual sum in _Untraceable"):
        propagation(_Untraceable(), -torch.ones(2, 3))  # the batch takes the branch that calls no layer


def test_discovered_points_follow_a_tuple_returning_block_and_token_axis():
    """No marking: the points come from discovery; a block returning (stream, extra) is followed along the stream,
    and Linear activations of shape (N, tokens, D) are normed per token (channel axis -1)."""
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2 = wninit.weight_norm(nn.Linear(32, 32)), wninit.weight_norm(nn.Linear(32, 32))

        def forward(self, x):
            return x + self.fc2(torch.relu(self.fc1(x))), x.mean()

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = nn.ModuleList(Block() for _ in range(4))

        def forward(self, x):
            for b in self.blocks:
                x, _ = b(x)
            return x

    model = Net()
    wninit.initialize(model)
    table = propagation(model, torch.randn(8, 5, 32))
    assert table.column("name") == ["x", "blocks.0", "blocks.1", "blocks.2", "blocks.3"]  # the input, each block
    assert all(shape == "5x32" for shape in table.column("shape"))
    # per token: 5 positions of 32 features; the stage's norm ratio is sqrt((1+1/4)^4) = 1.5625 by the theory
    ratio = table.rows[-1].forward_position_mean / table.rows[0].forward_position_mean
    assert ratio == pytest.approx(1.5625, rel=0.15)


def test_measuring_points_are_named_after_the_models_modules_in_data_flow_order():
    """The zoo's HiFi-GAN: three parallel residual stages share the upsampler's output; it is measured once,
    under its module's name, before the sums of the first of them, and no two points share a name."""
    import sys
    sys.path.insert(0, str(Path(__file__).parent))
    from zoo import hifigan_generator

    from wninit.diagnostics.points import graph_points

    names = [p.name for p in graph_points(hifigan_generator.build())[1]]
    assert names[:6] == ["conv_pre", "ups.0", "resblocks.0/sum1", "resblocks.0/sum2", "resblocks.0/sum3",
                         "resblocks.1/sum1"]
    assert names[-1] == "conv_post" and len(set(names)) == len(names)
    assert names.index("ups.1") > names.index("resblocks.2/sum3")  # the next upsampler after the three stages
