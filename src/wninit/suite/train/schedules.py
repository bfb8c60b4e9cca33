"""The reference's learning-rate schedules 0-5 and its quadratic per-iteration warmup (docs/method.md §6.1).

The schedule is piecewise constant and read once per epoch; the warmup overrides it inside the first
`warmup_epochs` epochs, one value per mini-batch. The boundaries and factors are computed with the
reference's own float expressions (e.g. `(60/200)*T`, `lr*0.2**2`), so every value is equal to the
reference's bit for bit, except the one documented fix below.

NOTE: with a fractional `warmup_epochs` the reference's ramp passes alpha = 1 inside the last warmup
epoch and overshoots the target lr by up to `(ceil(E)/E)**2` (docs/method.md §6.1 "Quirk"). Here alpha is
clipped at 1; `reference_overshoot=True` reproduces the quirk.
"""
from __future__ import annotations

from wninit.errors import UserError

__all__ = ["SCHEDULES", "scheduled_lr", "warmup_alpha", "lr_at", "epoch_lrs"]

SCHEDULES = {
    0: "constant",
    1: "x0.1 at T/3, x0.01 at 2T/3",
    2: "x0.1 at T/2, x0.01 at 3T/4",
    3: "x0.2 at 60/200 T, 120/200 T, 160/200 T (Zagoruyko & Komodakis' WRN schedule)",
    4: "x0.1 at epoch 91, x0.01 at epoch 136 (He et al.'s ResNet schedule)",
    5: "same as 4",
}


def _pieces(lr: float, epochs: int, schedule: int) -> tuple[list[tuple[float, float]], float]:
    """(start epoch, lr) pieces and the value after the last start, as the reference defines them."""
    if schedule == 0:
        return [(0, lr), (epochs, lr)], lr
    if schedule == 1:
        return [(0, lr), (epochs / 3, lr * 0.1), (epochs * 2 / 3, lr * 0.01)], lr * 0.01
    if schedule == 2:
        return [(0, lr), (epochs / 2, lr * 0.1), (epochs * 3 / 4, lr * 0.01)], lr * 0.01
    if schedule == 3:  # the WRN paper's 200-epoch recipe, stretched to T epochs
        return ([(0, lr), ((60.0 / 200) * epochs, lr * 0.2), ((120.0 / 200) * epochs, lr * 0.2 ** 2),
                 ((160.0 / 200) * epochs, lr * 0.2 ** 3)], lr * 0.2 ** 3)
    if schedule in (4, 5):  # absolute epochs, whatever T is
        return [(0, lr), (91, 0.1 * lr), (136, 0.01 * lr)], 0.01 * lr
    raise UserError(f"unknown schedule {schedule!r}: choose one of 0-5 (docs/method.md §6.1)")


def scheduled_lr(lr: float, epochs: int, schedule: int, epoch: int) -> float:
    """The lr of `epoch` (0-based) under reference schedule `schedule` for a `epochs`-epoch run.

    A piece `[t_i, t_{i+1})` keeps the value at its left end; from the last start on, the last value.
    """
    pieces, after = _pieces(lr, epochs, schedule)
    for (start, value), (end, _) in zip(pieces, pieces[1:]):
        if start <= epoch < end:
            return value
    return after


def warmup_alpha(epoch: int, iteration: int, iters_per_epoch: int, warmup_epochs: float, warmup_lr: float,
                 *, reference_overshoot: bool = False) -> float | None:
    """Warmup progress alpha of mini-batch `iteration` of `epoch`, or None outside the warmup.

    $$
    \\alpha_i = (e + (i + \\text{offset}) / n) / E, \\quad \\text{offset} = 1 \\text{ if } lr_0 = 0 \\text{ else } 0
    $$

    so a ramp from 0 never takes a step at lr 0 and a ramp from lr_0 > 0 starts exactly at lr_0.
    """
    if not epoch < warmup_epochs:
        return None
    offset = 1 if warmup_lr == 0 else 0
    alpha = (epoch + (iteration + offset) / iters_per_epoch) / warmup_epochs
    return alpha if reference_overshoot else min(alpha, 1.0)


def _get(params, name):
    return params[name] if isinstance(params, dict) else getattr(params, name)


def lr_at(params, epoch: int, iteration: int, iters_per_epoch: int, *, reference_overshoot: bool = False) -> float:
    """The lr of mini-batch `iteration` (0-based) of `epoch`: schedule, then quadratic warmup.

    `params` is a [`RunConfig`][wninit.suite.train.config.RunConfig] or any object/dict with `lr`, `epochs`,
    `schedule`, `warmup_epochs` and `warmup_lr`. Inside the warmup (docs/method.md §6.1):

    $$
    lr_i = lr_0 + \\alpha_i^2 (lr_\\text{target} - lr_0)
    $$

    with `lr_target` the scheduled lr of that epoch.
    """
    target = scheduled_lr(_get(params, "lr"), _get(params, "epochs"), _get(params, "schedule"), epoch)
    lr0 = _get(params, "warmup_lr")
    alpha = warmup_alpha(epoch, iteration, iters_per_epoch, _get(params, "warmup_epochs"), lr0,
                         reference_overshoot=reference_overshoot)
    if alpha is None:
        return target
    return lr0 + alpha ** 2 * (target - lr0)


def epoch_lrs(params, epoch: int, iters_per_epoch: int, *, reference_overshoot: bool = False) -> list[float]:
    """[`lr_at`][wninit.suite.train.schedules.lr_at] for every mini-batch of `epoch`: what `fit` sets before each one."""
    return [lr_at(params, epoch, i, iters_per_epoch, reference_overshoot=reference_overshoot)
            for i in range(iters_per_epoch)]
