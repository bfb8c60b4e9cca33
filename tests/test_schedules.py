"""The reference schedules 0-5 and the quadratic warmup, value by value (docs/method.md §6.1)."""
import math

import pytest

from wninit.suite.train.config import RunConfig
from wninit.suite.train.schedules import epoch_lrs, lr_at, scheduled_lr, warmup_alpha


def _reference_piecewise(points, outside, t):
    # docs/method.md §6.1, PiecewiseSchedule with choose-left interpolation: the value at the left end of the piece.
    for i in range(len(points) - 1):
        if points[i][0] <= t < points[i + 1][0]:
            return points[i][1]
    return outside


# (schedule, T, lr) -> the hand-computed lr of every epoch 0..T-1 (values written out, not computed by the code under test)
TABLE = {
    (0, 5, 0.1): [0.1] * 5,
    (1, 12, 0.1): [0.1] * 4 + [0.01] * 4 + [0.001] * 4,          # x0.1 at 4, x0.01 at 8
    (1, 10, 0.1): [0.1] * 4 + [0.01] * 3 + [0.001] * 3,          # T/3 = 3.33 -> epoch 4; 2T/3 = 6.67 -> epoch 7
    (2, 8, 1.0): [1.0] * 4 + [0.1] * 2 + [0.01] * 2,             # x0.1 at 4, x0.01 at 6
    (2, 10, 1.0): [1.0] * 5 + [0.1] * 3 + [0.01] * 2,            # 3T/4 = 7.5 -> epoch 8
    (3, 200, 0.1): [0.1] * 60 + [0.02] * 60 + [0.004] * 40 + [0.0008] * 40,
    (3, 10, 0.1): [0.1] * 3 + [0.02] * 3 + [0.004] * 2 + [0.0008] * 2,
    (4, 200, 0.1): [0.1] * 91 + [0.01] * 45 + [0.001] * 64,      # absolute epochs 91 and 136
    (5, 200, 0.1): [0.1] * 91 + [0.01] * 45 + [0.001] * 64,
    (4, 50, 0.1): [0.1] * 50,                                    # a short run never reaches epoch 91
}


@pytest.mark.parametrize("key", list(TABLE))
def test_schedule_table(key):
    schedule, T, lr = key
    got = [scheduled_lr(lr, T, schedule, e) for e in range(T)]
    assert got == pytest.approx(TABLE[key], rel=1e-12)


@pytest.mark.parametrize("T", [1, 3, 7, 10, 30, 90, 200, 301])
@pytest.mark.parametrize("lr", [0.1, 0.05, 0.003])
def test_schedules_equal_the_reference_expressions_bitwise(T, lr):
    reference = {
        0: ([(0, lr), (T, lr)], lr),
        1: ([(0, lr), (T / 3, lr * 0.1), (T * 2 / 3, lr * 0.01)], lr * 0.01),
        2: ([(0, lr), (T / 2, lr * 0.1), (T * 3 / 4, lr * 0.01)], lr * 0.01),
        3: ([(0, lr), ((60. / 200) * T, lr * 0.2), ((120. / 200) * T, lr * (0.2 ** 2)),
             ((160. / 200) * T, lr * (0.2 ** 3))], lr * (0.2 ** 3)),
        4: ([(0, lr), (91, 0.1 * lr), (136, 0.01 * lr)], 0.01 * lr),
        5: ([(0, lr), (91, 0.1 * lr), (136, 0.01 * lr)], 0.01 * lr),
    }
    for schedule, (points, outside) in reference.items():
        for e in range(T + 2):
            assert scheduled_lr(lr, T, schedule, e) == _reference_piecewise(points, outside, e)


# warmup: lr_i = lr0 + alpha_i^2 (lr - lr0), alpha_i = (e + (i + offset)/n)/E, offset = 1 iff lr0 == 0
WARMUP = [
    # (E, lr0, n, epochs): per-epoch lists for the first 3 epochs, hand-computed
    ((2, 0.0, 4), [[0.0015625, 0.00625, 0.0140625, 0.025], [0.0390625, 0.05625, 0.0765625, 0.1], [0.1] * 4]),
    # lr0 > 0: offset 0, so the ramp starts exactly at lr0 and its last step is at alpha = 7/8
    ((2, 0.01, 4), [[0.01, 0.01140625, 0.015625, 0.02265625], [0.0325, 0.04515625, 0.060625, 0.07890625], [0.1] * 4]),
]


@pytest.mark.parametrize("case", WARMUP)
def test_warmup_table(case):
    (E, lr0, n), expected = case
    cfg = RunConfig(lr=0.1, epochs=10, warmup_epochs=E, warmup_lr=lr0)
    for e in range(3):
        assert epoch_lrs(cfg, e, n) == pytest.approx(expected[e], rel=1e-12, abs=0)


def test_fractional_warmup_fixes_the_overshoot_and_keeps_the_quirk_on_request():
    cfg = dict(lr=0.1, epochs=10, schedule=0, warmup_epochs=1.5, warmup_lr=0.0)
    ramp0 = [0.1 / 36, 0.1 / 9, 0.025, 0.1 * 4 / 9]  # alpha = 1/6, 1/3, 1/2, 2/3
    assert epoch_lrs(cfg, 0, 4) == pytest.approx(ramp0, rel=1e-12)
    # epoch 1 < 1.5 is still a warmup epoch: alpha = 5/6, 1, 7/6, 4/3
    assert epoch_lrs(cfg, 1, 4, reference_overshoot=True) == pytest.approx(
        [0.1 * 25 / 36, 0.1, 0.1 * 49 / 36, 0.1 * 16 / 9], rel=1e-12)
    assert epoch_lrs(cfg, 1, 4) == pytest.approx([0.1 * 25 / 36, 0.1, 0.1, 0.1], rel=1e-12)
    # the reference's worst overshoot is (ceil(E)/E)^2
    worst = max(epoch_lrs(cfg, 1, 4, reference_overshoot=True))
    assert worst == pytest.approx(0.1 * (math.ceil(1.5) / 1.5) ** 2, rel=1e-12)
    assert epoch_lrs(cfg, 2, 4) == [0.1] * 4


def test_warmup_equals_the_reference_expression_bitwise_at_every_iteration():
    for E, lr0, n, schedule in [(3, 0.0, 7, 1), (2.5, 0.0, 5, 0), (4, 0.02, 9, 3), (0.5, 0.001, 3, 2)]:
        cfg = dict(lr=0.1, epochs=12, schedule=schedule, warmup_epochs=E, warmup_lr=lr0)
        for e in range(6):
            target = scheduled_lr(0.1, 12, schedule, e)
            got = epoch_lrs(cfg, e, n, reference_overshoot=True)
            if e < E:
                offset = int(lr0 == 0)
                alphas = [(e + i / n) / E for i in range(offset, n + offset)]
                assert got == [lr0 + (a ** 2) * (target - lr0) for a in alphas]
            else:
                assert got == [target] * n


def test_warmup_targets_the_scheduled_lr_of_its_epoch():
    # schedule 1 with T = 3 drops at epoch 1, inside a 2-epoch warmup: epoch 1 ramps towards 0.1*lr
    cfg = dict(lr=1.0, epochs=3, schedule=1, warmup_epochs=2, warmup_lr=0.0)
    assert lr_at(cfg, 1, 1, 2) == pytest.approx(0.1 * 1.0 ** 2, rel=1e-12)   # alpha = (1 + 2/2)/2 = 1
    assert lr_at(cfg, 1, 0, 2) == pytest.approx(0.1 * 0.75 ** 2, rel=1e-12)  # alpha = (1 + 1/2)/2


def test_no_warmup_outside_the_warmup_epochs():
    assert warmup_alpha(3, 0, 10, 3, 0.0) is None
    assert warmup_alpha(0, 0, 10, 0, 0.0) is None
    assert lr_at(RunConfig(lr=0.3, epochs=4), 0, 0, 10) == 0.3
