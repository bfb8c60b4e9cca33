"""Which runs train together as one stacked model, and `fit_ensemble`, which trains them.

Runs that share an MLP architecture and its data pipeline but differ in seed, learning rate, momentum,
weight decay, schedule, warmup or init scheme train as one `StackedMLP`: one
batched matmul per layer for all M members. Each member follows its standalone [`wninit.suite.train.fit`][wninit.suite.train.single_run.fit]
run (docs/method.md §6.1) step for step:

- the same model and init: each member's standalone MLP is built and initialized exactly as `fit` does
  (global seed, head default init, first shuffled batch, init generator), then copied into the stack;
- its own data: its own seeded validation split and its own loader generator, so the same batches in
  the same order (and the same augmentation draws) as its standalone run;
- its own SGD (`StackedSGD`), lr schedule and per-iteration warmup;
- its own divergence: a NaN/Inf loss freezes that member (lr 0, finite weights) and reports it
  `diverged` at that epoch and step; the others go on;
- its own best-validation checkpoint, evaluated on the test split at the end.

The trajectories equal the standalone ones up to float32 rounding (a batched matmul may round
differently from a single one; on the suite's CPU they are equal bit for bit); tests/test_ensemble.py
states the tolerance. The group's data, stacked model and SGD are in `.stacked`; it trains through
the one training loop of the suite (`wninit.suite.train.loop`).
"""
from __future__ import annotations

import warnings

from wninit.errors import UserError
from wninit.suite.train.config import RunConfig
from wninit.suite.train.single_run import fit
from wninit.suite.train.result import RunResult
from wninit.suite.sweep.stacked import run_group

__all__ = ["MEMBER_FIELDS", "batchable", "group_key", "batchable_groups", "fit_ensemble"]

# The fields members of one group may differ in: each member carries its own value. Every other field
# (data, architecture, batch size, epochs, validation fraction, augmentation, device...) must be equal,
# because it fixes the shapes of the stacked tensors or the number of steps all members take together.
# ``seed`` may differ: each member has its own validation split and loader generator, and the batches
# are gathered per member. ``k`` is unused by the MLP; ``threads`` and ``download`` do not change results.
MEMBER_FIELDS = ("seed", "lr", "momentum", "weight_decay", "wd_exempt_gain_bias", "scheme", "direction",
                 "stem_gamma", "schedule", "warmup_epochs", "warmup_lr", "k", "threads", "download",
                 "hessian_iters", "hessian_batches")


def batchable(cfg: RunConfig) -> bool:
    """True when `cfg` can be a member of a stacked group: a training run of an MLP with WN or no norm.

    NOTE: BN MLPs are not batched: their running statistics and batch statistics would need a stacked
    BatchNorm, which the suite's small-model sweeps (docs/method.md §7.1, WN MLPs) do not need. Runs asking for
    bf16 or torch.compile (train/accel.py), or a normalizer-free peer (wninit.peers), run alone, through fit,
    which implements those options.
    """
    return (cfg.arch == "mlp" and cfg.norm in ("wn", "none") and cfg.task == "train" and cfg.precision == "fp32"
            and not cfg.compile and cfg.peer == "none")


def group_key(cfg: RunConfig) -> tuple:
    """What members of one group share: every resolved field except `MEMBER_FIELDS`."""
    d = cfg.resolved().to_dict()
    return tuple(sorted((k, v) for k, v in d.items() if k not in MEMBER_FIELDS))


def batchable_groups(cfgs: list[RunConfig], max_members: int | None = None, workers: int = 1,
                     min_members: int = 4) -> list[list[RunConfig]]:
    """Partition `cfgs` into groups that `fit_ensemble` trains together, in first-seen order.

    Batchable configs (`batchable`) with equal `group_key` share a group, split into equal
    chunks (sizes differ by at most one) of at most `max_members`; every other config is a group of
    its own. With `workers` > 1 a group is also split into as many chunks as there are workers (a
    multiple of it when `max_members` asks for more chunks), as far as each chunk keeps
    `min_members`: every worker then holds an equal share of every group, whatever a group costs.
    Without it, a sweep whose groups differ in cost (Fig. 2's depths) leaves a worker idle while another
    trains the deepest group (docs/performance.md).

    Examples:
        >>> base = RunConfig(dataset="mnist5k", depth=10, epochs=3)
        >>> groups = batchable_groups([base.replace(seed=s) for s in range(4)] + [base.replace(arch="cnn")])
        >>> [len(g) for g in groups]
        [4, 1]
        >>> [len(g) for g in batchable_groups([base.replace(seed=s) for s in range(12)], workers=2)]
        [6, 6]
    """
    for name, value in (("max_members", max_members), ("workers", workers), ("min_members", min_members)):
        if value is not None and (not isinstance(value, int) or value < 1):
            raise UserError(f"{name} must be an integer >= 1, got {value!r}")
    groups: dict = {}
    for i, cfg in enumerate(cfgs):
        if not isinstance(cfg, RunConfig):
            raise UserError(f"batchable_groups needs wninit.suite.train.RunConfig items, got {type(cfg).__name__}")
        key = ("batch", group_key(cfg)) if batchable(cfg) else ("alone", i)
        groups.setdefault(key, []).append(cfg)
    return [chunk for group in groups.values()
            for chunk in _split(group, _chunks(len(group), max_members, workers, min_members))]


def _chunks(n: int, max_members: int | None, workers: int, min_members: int) -> int:
    """How many chunks a group of `n` becomes (see `batchable_groups`)."""
    k = -(-n // max_members) if max_members else 1
    if workers > 1:
        k = max(k, min(workers, n // min_members))
        rounded = -(-k // workers) * workers
        if k > workers and n // rounded >= min_members:
            k = rounded
    return k


def _split(group: list, k: int) -> list[list]:
    """`group` in `k` consecutive chunks whose sizes differ by at most one."""
    size, extra = divmod(len(group), k)
    bounds = [i * size + min(i, extra) for i in range(k + 1)]
    return [group[a:b] for a, b in zip(bounds, bounds[1:])]


# ---- the run --------------------------------------------------------------------------------------

def fit_ensemble(cfgs: list[RunConfig]) -> list[RunResult]:
    """Train `cfgs` (one `batchable_groups` group) as one stacked model; one RunResult per config.

    Each result is the one [`wninit.suite.train.fit`][wninit.suite.train.single_run.fit] returns for that config alone (docs/method.md §6.1), up to
    float32 rounding; `wall_s` is the group's wall time divided by its size and `env["batched"]`
    the group's size. A lone config that cannot be batched (a CNN, a BN net, a Hessian task) is run by
    `fit`. Nothing is written to disk: a group is one unit of work, rerun whole if interrupted.

    Examples:
        >>> base = RunConfig(dataset="mnist5k", depth=10, epochs=3, momentum=0.9)
        >>> results = fit_ensemble([base.replace(seed=s, lr=lr) for s, lr in [(1, 0.01), (2, 0.1)]])
    """
    cfgs = list(cfgs)
    if not cfgs or not all(isinstance(c, RunConfig) for c in cfgs):
        raise UserError("fit_ensemble needs a non-empty list of wninit.suite.train.RunConfig")
    if len(cfgs) == 1 and not batchable(cfgs[0]):
        warnings.warn(f"run {cfgs[0].run_id} cannot be stacked (only fp32 training runs of WN or plain MLPs "
                      "without torch.compile or a peer can), so it trains alone through fit", stacklevel=2)
        return [fit(cfgs[0])]
    if len(batchable_groups(cfgs)) != 1:
        raise UserError("these configs cannot train as one stacked model (they must all be WN or plain MLP "
                        "training runs equal in every field but " + ", ".join(MEMBER_FIELDS) +
                        "); split them with batchable_groups first")
    return run_group([c.resolved() for c in cfgs])
