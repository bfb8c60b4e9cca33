"""Where the paper is silent, wninit follows the reference code (docs/method.md §3.5, §3.6, §7.5, §7.6):
the gains its ResNet/WRN constructors give, the scale of Gaussian directions, the best-checkpoint score of
a diverged run, its BN baselines as they ran, and the Hessian's normalization."""
import importlib
import math

import pytest
import torch

import wninit
from wninit.diagnostics.hessian import hessian_spectral_norm
from wninit.errors import UserError
from wninit.models import MLP, ResNet, WideResNet, build_model
from wninit.models.layers import ReferenceBatchNorm2d
from wninit.suite.report import claims as C
from wninit.suite.report import stats, tables
from wninit.suite.train.config import RunConfig
from wninit.suite.train import fit
from wninit.weightnorm.access import weight_normed_layers, wn_g, wn_v


# -- the reference constructors' gains, re-implemented from the spec's description -------------------
def _conv2_gamma(scheme: str, block: int, blocks: int) -> float:
    # the reference's conv2 g_gain: 1/N (proposed, stage-wise) or Hanin's (0.9^b)^2
    return (0.9 ** block) ** 2 if scheme == "hanin" else 1.0 / blocks


def _blocks(c: int, sizes: list[int], n: int, scheme: str, first_stride) -> list[tuple[int, int, float]]:
    """(C_in, C_out, g_gain) per WN conv of the residual stages, in the reference's init order."""
    layers = []
    for stage, out in enumerate(sizes):
        for i in range(n):
            stride = first_stride(stage) if i == 0 else 1
            layers += [(c, out, 2.0), (out, out, _conv2_gamma(scheme, i + 1, n))]
            if out != c or stride > 1:
                layers.append((c, out, 1.0))  # shortcut: g_gain 1
            c = out
    return layers


def reference_resnet_gains(depth: int, width: int, in_ch: int, scheme: str) -> list[float]:
    """The reference ``ResNet`` class: its first conv gets no g_gain, so the default 2."""
    n = (depth - 2) // 6
    layers = [(in_ch, width, 2.0)] + _blocks(width, [width, 2 * width, 4 * width], n, scheme,
                                             lambda stage: 1 if stage == 0 else 2)
    return [math.sqrt(gamma * ci / co) for ci, co, gamma in layers]  # fan_in/fan_out = C_in/C_out


def reference_wrn_gains(depth: int, k: int, in_ch: int, scheme: str) -> list[float]:
    """The reference ``WideResNet`` class: conv1 (3 -> 16) with g_gain 1."""
    n = (depth - 4) // 6
    layers = [(in_ch, 16, 1.0)] + _blocks(16, [16 * k, 32 * k, 64 * k], n, scheme, lambda stage: 1 if stage == 0 else 2)
    return [math.sqrt(gamma * ci / co) for ci, co, gamma in layers]


@pytest.mark.parametrize("scheme", ["proposed", "hanin"])
@pytest.mark.parametrize("build, reference", [
    (lambda: ResNet(20, 10), lambda s: reference_resnet_gains(20, 16, 3, s)),
    (lambda: ResNet(56, 10), lambda s: reference_resnet_gains(56, 16, 3, s)),
    (lambda: WideResNet(16, 2, 10), lambda s: reference_wrn_gains(16, 2, 3, s)),
])
def test_every_gain_equals_the_reference_constructors(build, reference, scheme):
    model = build()
    wninit.initialize(model, scheme, generator=torch.Generator().manual_seed(0))
    ours = [wn_g(layer).detach() for _, layer in weight_normed_layers(model)]
    want = reference(scheme)
    assert len(ours) == len(want)
    for g, w in zip(ours, want):
        torch.testing.assert_close(g, torch.full_like(g, w), rtol=1e-6, atol=0)


def test_the_resnet_stem_gamma_2_is_the_default_and_1_stays_selectable():
    model = ResNet(20, 10)
    stem = dict((r.name, r) for r in wninit.initialize(model, "proposed", stem_gamma=1.0))["stem"]
    assert stem.g == pytest.approx(math.sqrt(3 / 16), rel=1e-6)  # gamma 1 on request (the WRN's)
    cfg = RunConfig(dataset="digits", arch="resnet", depth=20, width=16)
    assert cfg.resolved().stem_gamma == 2.0 and cfg.replace(arch="wrn", depth=16).resolved().stem_gamma == 1.0
    assert cfg.run_id != cfg.replace(stem_gamma=1.0).run_id  # a different init, a different run


# -- the scale of Gaussian directions --------------------------------------------------------------------
def _mean_row_norm(model) -> float:
    norms = [wn_v(layer).detach().flatten(1).norm(dim=1) for _, layer in weight_normed_layers(model)]
    return float(torch.cat(norms).mean())


@pytest.mark.parametrize("scheme, want", [("proposed", 1.0), ("proposed-backward", 1.0), ("hanin", 1.0),
                                          ("pytorch-default", math.sqrt(2)), ("datadep", math.sqrt(2))])
def test_gaussian_direction_rows_have_the_reference_norm(scheme, want):
    # the reference: N(0, 1/fan_in) for its proposed ("he_proposed") init, kaiming_normal_ for the others
    model = MLP(784, 512, 4, 10) if scheme != "hanin" else WideResNet(10, 4, 10)
    batch = torch.randn(64, 784) if scheme == "datadep" else None
    wninit.initialize(model, scheme, direction="gaussian", batch=batch, generator=torch.Generator().manual_seed(3))
    assert _mean_row_norm(model) == pytest.approx(want, rel=0.02)


def test_gaussian_proposed_runs_got_new_schema_1_ids_and_orthogonal_ones_kept_theirs():
    from wninit.suite.train.run_ids import legacy_fields

    cfg = RunConfig(dataset="mnist5k", depth=20, lr=0.001, momentum=0.9, epochs=10)
    assert "gaussian_gain" not in legacy_fields(cfg)
    assert legacy_fields(cfg.replace(direction="gaussian"))["gaussian_gain"] == 1.0
    assert "gaussian_gain" not in legacy_fields(cfg.replace(direction="gaussian", scheme="datadep"))


# -- a diverged run reports its best checkpoint's accuracy -------------------------------------------------
SMALL = RunConfig(dataset="digits", depth=3, width=32, epochs=4, lr=0.05, momentum=0.9, batch_size=64, seed=3)


def _as_store_run(result):
    return type("R", (), {"config": RunConfig.from_dict(result.config), "status": result.status,
                          "metrics": result.metrics()})()


def test_a_run_diverging_after_its_first_epoch_scores_its_best_checkpoint(monkeypatch):
    loop = importlib.import_module("wninit.suite.train.loop")
    real, epoch = loop.train_epoch, {"n": 0}

    def nan_at_epoch_2(*args, **kw):  # the loss turns NaN at step 3 of epoch 2
        if epoch["n"] == 2:
            return None, None, {0: 3}
        epoch["n"] += 1
        return real(*args, **kw)

    monkeypatch.setattr(loop, "train_epoch", nan_at_epoch_2)
    late = fit(SMALL)
    monkeypatch.undo()
    early = fit(SMALL.replace(lr=1e5, seed=4))  # NaN in the first epoch: no checkpoint
    assert late.status == early.status == "diverged" and late.diverged_at["epoch"] == 2
    assert early.diverged_at["epoch"] == 0 and early.test_acc is None
    assert late.test_acc > 0.5  # two epochs of digits
    cell = tables.depth_sweep([_as_store_run(late)])[(("proposed", "orthogonal"), SMALL.depth)]
    assert cell.test.values == [late.test_acc] and cell.test.counts == {"diverged": 1}
    cell = tables.depth_sweep([_as_store_run(early)])[(("proposed", "orthogonal"), SMALL.depth)]
    assert cell.test.values == [0.0] and cell.test.counts == {"diverged": 1}
    # Table 1 (error %) counts the same: the best checkpoint's error, 100% without one
    for result, error in ((late, 100 * (1 - late.test_acc)), (early, 100.0)):
        row, = next(iter(tables.wn_vs_bn([_as_store_run(result)]).values()))
        assert row.error.values == [pytest.approx(error)]


# -- the reference BN baselines ------------------------------------------------------------------------------
@pytest.mark.parametrize("arch, depth, k, count", [("wrn", 40, 10, 55_855_050), ("resnet", 56, 1, 857_738)])
def test_reference_bn_nets_have_the_reference_parameter_counts(arch, depth, k, count):
    with torch.device("meta"):  # counts only: no 55M-parameter allocation
        model = build_model(arch, in_shape=(3, 32, 32), num_classes=10, depth=depth, k=k, width=16, norm="bn",
                            bn_reference=True)
    assert sum(p.numel() for p in model.parameters()) == count


def test_reference_bn_keeps_uniform_weights_and_runs_bn1_twice_in_projection_blocks():
    torch.manual_seed(0)
    model = ResNet(8, 10, norm="bn", bn_reference=True)
    wninit.initialize(model, "orthogonal", generator=torch.Generator().manual_seed(0))
    bns = [m for m in model.modules() if isinstance(m, ReferenceBatchNorm2d)]
    weights = torch.cat([m.weight.detach() for m in bns])
    assert len(bns) == 2 + 2 * 3 and 0 <= float(weights.min()) and float(weights.max()) < 1
    assert 0.4 < float(weights.mean()) < 0.6  # U(0, 1), not today's 1
    plain = ResNet(8, 10, norm="bn")
    wninit.initialize(plain, "orthogonal")
    assert all(torch.all(m.weight == 1) for m in plain.modules() if isinstance(m, torch.nn.BatchNorm2d))
    # bn1 of a projection block moves its running mean twice per step: 1 - 0.9^2 of the batch mean
    block = model.blocks[1]  # stage 2's first block: stride 2, a projection
    assert block.shortcut is not None and block.bn1_twice
    x = torch.randn(16, 16, 8, 8) + 1.0
    block.train()(x)
    batch_mean = x.mean(dim=(0, 2, 3))
    torch.testing.assert_close(block.bn1.running_mean, (1 - 0.9 ** 2) * batch_mean, rtol=1e-5, atol=1e-6)
    assert not model.blocks[0].bn1_twice  # identity blocks call bn1 once, as the reference


def test_bn_reference_and_reduced_memory_are_run_config_fields():
    cfg = RunConfig(dataset="digits", arch="wrn", depth=10, k=1, norm="bn", scheme="orthogonal", bn_reference=True,
                    reduced_memory=True)
    assert cfg.run_id != cfg.replace(bn_reference=False).run_id != cfg.replace(reduced_memory=False).run_id
    assert "bn_reference" not in RunConfig().result_fields()  # off: ids from before the fields existed
    model = build_model("wrn", in_shape=(1, 8, 8), num_classes=10, depth=10, reduced_memory=True)
    assert model.stem.stride == (2, 2)
    with pytest.raises(UserError, match="bn_reference builds the reference code's BN ResNets"):
        RunConfig(arch="wrn", depth=10, bn_reference=True)
    with pytest.raises(UserError, match="reduced_memory .* is an option of arch 'wrn'"):
        RunConfig(arch="resnet", depth=8, reduced_memory=True)


# -- the Hessian's normalization -------------------------------------------------------------------------------
def test_reference_hessian_normalization_is_k_over_k_plus_1_of_the_mean():
    torch.manual_seed(0)
    model = MLP(20, 16, 2, 3)
    wninit.initialize(model, "proposed", generator=torch.Generator().manual_seed(0))
    batches = [(torch.randn(8, 20), torch.randint(0, 3, (8,))) for _ in range(4)]
    mean = hessian_spectral_norm(model, batches, iters=15)
    ref = hessian_spectral_norm(model, batches, iters=15, normalization="reference")
    assert ref / mean == pytest.approx(4 / 5, rel=1e-6)
    with pytest.raises(UserError, match="normalization must be 'mean'"):
        hessian_spectral_norm(model, batches, normalization="sum")


# -- the statistics the claims are judged with ------------------------------------------------------------------
def test_statistics_helpers():
    assert stats.sign_test_p(5, 0) == pytest.approx(1 / 32)
    assert stats.sign_test_p(2, 1) == pytest.approx(4 / 8)
    assert stats.welch_p([0.0, 0.0], [0.9, 0.9]) == 0.0 and stats.welch_p([0.9, 0.9], [0.0, 0.0]) == 1.0
    assert stats.welch_p([0.1], [0.9, 0.8]) is None
    from scipy import stats as sp
    a, b = [1.0, 1.2, 0.9, 1.1], [2.0, 2.5, 1.8, 2.2]
    assert stats.welch_p(a, b) == pytest.approx(sp.ttest_ind(a, b, equal_var=False, alternative="less").pvalue)
    # one-sided 95% lower bound of [0.8, 0.9]: 0.85 - t(0.95, 1) * 0.0707/sqrt(2) = 0.85 - 6.314 * 0.05
    assert stats.mean_bound([0.8, 0.9]) == pytest.approx(0.85 - 6.3138 * 0.05, abs=1e-4)
    assert stats.decide(0.01, 0.99) is True and stats.decide(0.99, 0.01) is False
    assert stats.decide(0.2, 0.8) == stats.UNDECIDED and stats.decide(None, 0.5) is None


def test_a_claim_is_inconclusive_when_its_test_separates_neither_way():
    def table(datadep, proposed):
        return {("digits", "ResNet-20"): [tables.MethodRow(m, tables.Stat(v, {"completed": len(v)}), {}, {}, [])
                                          for m, v in (("datadep", datadep), ("proposed", proposed))]}
    claim = C.table1_claim(table([2.0, 3.0, 2.5], [2.2, 2.4, 2.9]), "test")
    assert claim.verdict == C.INCONCLUSIVE and "Welch" in claim.test and "p = " in claim.detail
    assert C.table1_claim(table([5.0, 5.2, 5.1], [2.0, 2.1, 2.2]), "test").verdict == C.HOLDS
    assert C.table1_claim(table([2.0, 2.1, 2.2], [5.0, 5.2, 5.1]), "test").verdict == C.FAILS


def test_figure1_bands_are_judged_on_the_interval_over_network_draws():
    from wninit.diagnostics.synthetic import Figure1Row
    from wninit.suite.report.figure1_claims import judge_figure1

    def rows(low_by_draw):
        """Theory curves for every draw; Proposed (He) at width 1000, layer 7, is `low_by_draw[d]` in draw d."""
        out = []
        for d, low_mean in enumerate(low_by_draw):
            for width in (200, 1000):
                for i in range(1, 21):
                    out.append(Figure1Row("ff_forward", "He (g=1)", width, i, (0.447 if width == 200 else 1.0) * 0.707 ** (i - 1), 0.0, d))
                    out.append(Figure1Row("ff_forward", "Proposed (orthogonal)", width, i, 1.0, 0.0, d))
                    low = width == 1000 and i == 7
                    out.append(Figure1Row("ff_forward", "Proposed (He)", width, i, low_mean if low else 1.0, 0.0, d))
                for i in range(2, 20):
                    out += [Figure1Row("ff_backward", n, width, i, 0.707 ** (20 - i) if n == "He (g=1)" else 1.0, 0.0, d)
                            for n in ("He (g=1)", "Proposed (orthogonal)", "Proposed (He)")]
                for b in range(1, 41):
                    out += [Figure1Row("resnet_forward", n, width, b, 1.5 ** (b / 2) if n == "He (g=1)" else 1.025 ** (b / 2), 0.0, d)
                            for n in ("He (g=1)", "Proposed (orthogonal)", "Proposed (He)")]
                for b in range(2, 40):
                    out += [Figure1Row("resnet_backward", n, width, b, 1.025 ** ((40 - b) / 2), 0.0, d)
                            for n in ("Proposed (orthogonal)", "Proposed (He)")]
        return out
    spread = [-1, 1, -1, 1, -1, 1, -1, 1]
    # 8 draws at 0.845 +- 0.001: the t interval over draws, [0.844, 0.846], lies wholly below the band's 0.85
    assert judge_figure1(rows([0.845 + 0.001 * s for s in spread]))[0].verdict == C.FAILS
    # the same mean with draws 0.05 apart: 0.845 +- t(0.975, 7) 0.053/sqrt(8) = [0.80, 0.89] straddles 0.85
    claim = judge_figure1(rows([0.845 + 0.05 * s for s in spread]))[0]
    assert claim.verdict == C.INCONCLUSIVE and "[undecided]" in claim.detail and "8 network draws" in claim.test
    assert judge_figure1(rows([0.95 + 0.05 * s for s in spread]))[0].verdict == C.HOLDS  # [0.91, 0.99]
    # one draw, however far below the band, decides nothing: there is no spread between networks to judge it by
    one = judge_figure1(rows([0.5]))[0]
    assert one.verdict == C.INCONCLUSIVE and one.test.startswith("one network draw")


def test_clopper_pearson_interval():
    lo, hi = stats.clopper_pearson(13, 18)
    assert lo == pytest.approx(0.465, abs=1e-3) and hi == pytest.approx(0.903, abs=1e-3)
    assert stats.clopper_pearson(0, 20)[0] == 0.0 and stats.clopper_pearson(0, 0) is None
