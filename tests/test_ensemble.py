"""Batched small models (wninit.suite.sweep.ensemble): each member of a stacked group ends as its standalone run.

Tolerance (float32): a batched matmul may round differently from a single one, so a member's final
accuracies may differ from its standalone run's by at most one sample of the split, and every logged
loss by at most 1e-4 relative; status, best epoch, epochs done and the divergence point are equal.
(On the CPU the suite was written on, every metric, the logged losses included, is bit-identical.) The
members train in a regime where a last-ulp change does not grow into another accuracy within 2 epochs
(lr <= 0.02; checked by perturbing the stacked WN formula and head matmul), so the tolerance is the
float32 one and not chaos; the diverging members blow up within a few steps of the same point.
"""
from __future__ import annotations

import math

import pytest
import torch

from wninit.errors import UserError
from wninit.suite.sweep.ensemble import MEMBER_FIELDS, batchable_groups, fit_ensemble
from wninit.suite.sweep.stacked import StackedSGD
from wninit.suite.train import RunConfig, fit

LOSS_RTOL = 1e-4
# (val, test, train) sizes: one sample is 1/size of an accuracy. synthetic: 1024 train(+val), 256 test.
SPLITS = {"mnist5k": (400, 1000, 3600), "synthetic": (0, 256, 1024)}

BASE = RunConfig(dataset="mnist5k", depth=3, width=32, epochs=2, momentum=0.9)
# Differ in seed, lr, momentum, weight decay (and its exemption), scheme, direction, schedule, warmup.
MEMBERS = [
    BASE.replace(seed=1, lr=0.01),
    BASE.replace(seed=2, lr=0.01, scheme="pytorch-default"),
    BASE.replace(seed=3, lr=0.02, momentum=0.5, warmup_epochs=1.0, weight_decay=5e-4, wd_exempt_gain_bias=True),
    BASE.replace(seed=4, lr=0.02, momentum=0.0, scheme="datadep", direction="gaussian", schedule=1,
                 weight_decay=1e-3),
]
# Under a 1.9-epoch warmup, lr 7 diverges in epoch 1 (after a finished epoch 0), lr 40 in epoch 0.
DIVERGING = [BASE.replace(seed=5, lr=7.0, warmup_epochs=1.9), BASE.replace(seed=5, lr=40.0, warmup_epochs=1.9)]


def _close_acc(a, b, n) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and abs(a - b) <= 1 / n + 1e-12)


def _close_loss(a, b) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and math.isclose(a, b, rel_tol=LOSS_RTOL))


def _assert_same_run(batched, alone, dataset="mnist5k"):
    n_val, n_test, n_train = SPLITS[dataset]
    assert batched.run_id == alone.run_id
    assert (batched.status, batched.best_epoch, batched.epochs_done, batched.diverged_at) == \
           (alone.status, alone.best_epoch, alone.epochs_done, alone.diverged_at)
    for name, n in (("test_acc", n_test), ("best_val_acc", n_val), ("train_acc", n_train)):
        assert _close_acc(getattr(batched, name), getattr(alone, name), n), name
    for row_b, row_a in zip(batched.epochs, alone.epochs, strict=True):
        assert row_b["epoch"] == row_a["epoch"] and row_b["lr"] == row_a["lr"]
        assert _close_loss(row_b["train_loss"], row_a["train_loss"]) and _close_loss(row_b["val_loss"], row_a["val_loss"])
        assert _close_acc(row_b["val_acc"], row_a["val_acc"], n_val)
        assert _close_acc(row_b["train_acc"], row_a["train_acc"], n_train)


@pytest.fixture(scope="module")
def standalone():
    return {cfg.run_id: fit(cfg) for cfg in MEMBERS + DIVERGING}


def test_members_end_as_their_standalone_runs(standalone):
    results = fit_ensemble(MEMBERS)
    assert len(results) == len(MEMBERS)
    for cfg, result in zip(MEMBERS, results):
        assert result.status == "completed" and result.env["batched"] == len(MEMBERS)
        _assert_same_run(result, standalone[cfg.run_id])


def test_a_diverging_member_stops_alone_and_the_others_go_on(standalone):
    group = [MEMBERS[0], DIVERGING[0], MEMBERS[1], DIVERGING[1]]
    results = fit_ensemble(group)
    by_id = {r.run_id: r for r in results}
    late, early = (by_id[c.run_id] for c in DIVERGING)
    assert late.status == early.status == "diverged"
    assert late.diverged_at["epoch"] == 1 and late.test_acc is not None and late.best_epoch == 0
    assert early.diverged_at["epoch"] == 0 and early.test_acc is None and early.epochs_done == 0
    for cfg, result in zip(group, results):
        _assert_same_run(result, standalone[cfg.run_id])
    assert all(by_id[c.run_id].status == "completed" for c in MEMBERS[:2])


def test_augmentation_accumulation_no_val_split_and_plain_mlps_follow_their_standalone_runs():
    # Synthetic 3x32x32 images: each member's crop + flip + cutout draws, gradient accumulation, no WN,
    # and no validation split (the last epoch is the one tested).
    base = RunConfig(dataset="synthetic", depth=2, width=16, epochs=2, batch_size=128, mini_batch_size=64,
                     crop=True, flip=True, cutout=8, norm="none", scheme="he", momentum=0.9, val_fraction=0.0)
    group = [base.replace(seed=1, lr=0.02), base.replace(seed=2, lr=0.05, scheme="orthogonal")]
    for cfg, result in zip(group, fit_ensemble(group)):
        assert result.best_epoch == 1 and result.best_val_acc is None
        _assert_same_run(result, fit(cfg), "synthetic")


def test_groups_hold_only_runs_that_can_share_one_stacked_model():
    mlps = [MEMBERS[0], MEMBERS[1], MEMBERS[2]]
    deeper = BASE.replace(depth=4)
    cnn = BASE.replace(arch="cnn", scheme="proposed")
    bn = BASE.replace(norm="bn", scheme="he")
    hessian = BASE.replace(task="hessian")
    other_data = BASE.replace(dataset="digits")
    other_batch = BASE.replace(batch_size=64)
    cfgs = [mlps[0], deeper, cnn, mlps[1], bn, hessian, other_data, mlps[2], other_batch, deeper.replace(seed=9)]
    groups = batchable_groups(cfgs)
    assert groups == [mlps, [deeper, deeper.replace(seed=9)], [cnn], [bn], [hessian], [other_data], [other_batch]]
    assert [len(g) for g in batchable_groups(mlps * 3, max_members=4)] == [3, 3, 3]  # equal chunks
    with pytest.raises(UserError):
        fit_ensemble([mlps[0], deeper])
    assert set(MEMBER_FIELDS) <= {f for f in RunConfig().to_dict()}


@pytest.mark.parametrize("n, max_members, workers, sizes", [
    (24, 16, 2, [12, 12]),          # a depth of Fig. 2's quick grid: one chunk per worker
    (12, 16, 2, [6, 6]),            # the bench slice's depth: each worker gets half of every depth
    (40, 16, 2, [10, 10, 10, 10]),  # 3 chunks of <= 16 rounded up to a multiple of the workers
    (7, 16, 2, [7]),                # halves of 3 would be below min_members (4): kept whole
    (9, 4, 2, [3, 3, 3]),           # max_members wins over min_members
    (24, None, 8, [4] * 6),         # 8 workers: as many chunks as keep min_members (4) each
])
def test_groups_split_evenly_over_the_workers(n, max_members, workers, sizes):
    cfgs = [BASE.replace(seed=s) for s in range(n)]
    groups = batchable_groups(cfgs, max_members=max_members, workers=workers)
    assert [len(g) for g in groups] == sizes
    assert [c for g in groups for c in g] == cfgs  # every run once, in order


def test_stacked_sgd_is_torch_sgd_per_member():
    # Three members with their own lr, momentum (0 included: plain SGD) and weight decay, five steps.
    torch.manual_seed(0)
    lr, mom, wd = [0.1, 0.03, 0.5], [0.9, 0.0, 0.5], [5e-4, 0.0, 1e-2]
    stacked = torch.nn.Parameter(torch.randn(3, 4, 5))
    alone = [torch.nn.Parameter(stacked.detach()[m].clone()) for m in range(3)]
    opts = [torch.optim.SGD([p], lr=lr[m], momentum=mom[m], weight_decay=wd[m]) for m, p in enumerate(alone)]
    sgd = StackedSGD([stacked], torch.tensor(mom), [torch.tensor(wd)])
    for _ in range(5):
        grad = torch.randn(3, 4, 5)
        stacked.grad = grad.clone()
        sgd.step(torch.tensor(lr))
        for m, (p, opt) in enumerate(zip(alone, opts)):
            p.grad = grad[m].clone()
            opt.step()
    for m in range(3):
        torch.testing.assert_close(stacked.detach()[m], alone[m].detach(), rtol=1e-6, atol=1e-7)
