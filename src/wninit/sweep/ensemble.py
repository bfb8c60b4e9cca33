"""Many small MLP runs trained together as one model with stacked weights (DESIGN.md: sweep/ensemble.py).

Runs that share an MLP architecture and its data pipeline but differ in seed, learning rate, momentum,
weight decay, schedule, warmup or init scheme train as one :class:`~.ensemble_model.StackedMLP`: one
batched matmul per layer for all M members. Each member follows its standalone :func:`wninit.train.fit`
run (spec §6.1) step for step:

- the same model and init: each member's standalone MLP is built and initialized exactly as ``fit`` does
  (global seed, head default init, first shuffled batch, init generator), then copied into the stack;
- its own data: its own seeded validation split and its own loader generator, so the same batches in
  the same order (and the same augmentation draws) as its standalone run;
- its own SGD (:class:`~.ensemble_model.StackedSGD`), lr schedule and per-iteration warmup;
- its own divergence: a NaN/Inf loss freezes that member (lr 0, finite weights) and reports it
  ``diverged`` at that epoch and step; the others go on;
- its own best-validation checkpoint, evaluated on the test split at the end.

The trajectories equal the standalone ones up to float32 rounding (a batched matmul may sum in another
order than a single one); tests/test_ensemble.py states the tolerance.
"""
from __future__ import annotations

import contextlib
import math
import platform
import time

import torch
import torch.nn.functional as F

from ..errors import UserError
from ..train.config import RunConfig
from ..train.fit import derived_seed, fit, resolve_device
from ..train.loop import EVAL_BATCH
from ..train.result import RunResult
from ..train.schedules import epoch_lrs, scheduled_lr
from .ensemble_model import StackedMLP, StackedSGD

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
    """True when ``cfg`` can be a member of a stacked group: a training run of an MLP with WN or no norm.

    NOTE: BN MLPs are not batched: their running statistics and batch statistics would need a stacked
    BatchNorm, which the suite's small-model sweeps (spec §7.1, WN MLPs) do not need.
    """
    return cfg.arch == "mlp" and cfg.norm in ("wn", "none") and cfg.task == "train"


def group_key(cfg: RunConfig) -> tuple:
    """What members of one group share: every resolved field except :data:`MEMBER_FIELDS`."""
    d = cfg.resolved().to_dict()
    return tuple(sorted((k, v) for k, v in d.items() if k not in MEMBER_FIELDS))


def batchable_groups(cfgs: list[RunConfig], max_members: int | None = None) -> list[list[RunConfig]]:
    """Partition ``cfgs`` into groups that :func:`fit_ensemble` trains together, in first-seen order.

    Batchable configs (:func:`batchable`) with equal :func:`group_key` share a group (split into chunks
    of at most ``max_members``); every other config is a group of its own.

    Examples:
        >>> base = RunConfig(dataset="mnist5k", depth=10, epochs=3)
        >>> groups = batchable_groups([base.replace(seed=s) for s in range(4)] + [base.replace(arch="cnn")])
        >>> [len(g) for g in groups]
        [4, 1]
    """
    if max_members is not None and max_members < 1:
        raise UserError(f"max_members must be None or an integer >= 1, got {max_members!r}")
    groups: dict = {}
    for i, cfg in enumerate(cfgs):
        if not isinstance(cfg, RunConfig):
            raise UserError(f"batchable_groups needs wninit.train.RunConfig items, got {type(cfg).__name__}")
        key = ("batch", group_key(cfg)) if batchable(cfg) else ("alone", i)
        groups.setdefault(key, []).append(cfg)
    size = max_members or max(1, len(cfgs))
    return [group[s:s + size] for group in groups.values() for s in range(0, len(group), size)]


# ---- data: one pool, each member's split and order as its standalone run's ------------------------

class _MemberData:
    """The training pool once on the device, each member's train/val split as indices into it.

    ``load_dataset`` splits the training set by ``val_split_indices(n, val_fraction, seed)``; rebuilding
    the unsplit pool from one load and indexing it with each member's split gives every member the very
    tensors its own load would, without M copies of the data.
    """

    def __init__(self, cfgs: list[RunConfig], device: torch.device):
        from ..data import Loader, Split, load_dataset, val_split_indices

        c0 = cfgs[0]
        data = load_dataset(c0.dataset, root=c0.data_root, download=c0.download, val_fraction=c0.val_fraction,
                            seed=c0.seed)
        n = len(data.train) + len(data.val)
        tr0, va0 = val_split_indices(n, c0.val_fraction, c0.seed)
        x = torch.empty((n,) + tuple(data.train.x.shape[1:]), dtype=data.train.x.dtype)
        y = torch.empty(n, dtype=data.train.y.dtype)
        x[tr0], y[tr0] = data.train.x, data.train.y
        x[va0], y[va0] = data.val.x, data.val.y
        if c0.batch_size > len(data.train):  # the message fit's _load_data gives
            raise UserError(f"batch_size {c0.batch_size} is larger than the {len(data.train)}-sample training "
                            f"split of {c0.dataset}; use a batch size of at most {len(data.train)}")
        self.x, self.y = x.to(device), y.to(device)
        self.test_x, self.test_y = data.test.x.to(device), data.test.y.to(device)
        self.pad_value = data.train.pad_value.to(device) if data.train.pad_value is not None else None
        self.in_shape, self.num_classes = data.in_shape, data.num_classes
        self.crop, self.flip, self.cutout = 4 if c0.crop else 0, bool(c0.flip), c0.cutout
        splits = [val_split_indices(n, c.val_fraction, c.seed) for c in cfgs]
        self.val_idx = torch.stack([va for _, va in splits]).to(device)  # (M, n_val)
        # A loader over each member's train *indices*: the same permutation from the same generator as
        # its standalone Loader over the images; the augmentation is drawn right after, as there.
        self.generators = [torch.Generator(device).manual_seed(derived_seed(c.seed, "data")) for c in cfgs]
        self.loaders = [Loader(Split(tr, y[tr]), c0.loader_batch_size, shuffle=True, generator=g, device=device)
                        for (tr, _), g in zip(splits, self.generators)]

    def _augment(self, x: torch.Tensor, m: int) -> torch.Tensor:
        from ..data import cutout, random_crop_flip

        g = self.generators[m]
        if self.crop or self.flip:
            x = random_crop_flip(x, self.crop, self.flip, g, self.pad_value)
        if self.cutout:
            x = cutout(x, self.cutout, g)
        return x

    def batches(self):
        """One epoch of (x (M, B, ...), y (M, B)): member m's batch i is its standalone run's batch i."""
        augment = self.crop or self.flip or self.cutout
        for parts in zip(*self.loaders):
            idx = torch.stack([i for i, _ in parts])
            y = torch.stack([t for _, t in parts])
            x = self.x[idx]
            if augment:
                x = torch.stack([self._augment(x[m], m) for m in range(len(parts))])
            yield x, y

    def first_batch(self, m: int) -> torch.Tensor:
        """Member m's first shuffled, augmented batch: what fit draws for the init (spec §4)."""
        idx, _ = next(iter(self.loaders[m]))
        return self._augment(self.x[idx], m)


# ---- building the members as fit does -------------------------------------------------------------

def _member_model(cfg: RunConfig, data: _MemberData, m: int, device: torch.device):
    from ..models import build_model
    from ..schemes import initialize

    torch.manual_seed(cfg.seed)  # spec §6.1 set_seed: the head's default init comes from this stream
    model = build_model(cfg.arch, in_shape=data.in_shape, num_classes=data.num_classes, depth=cfg.depth,
                        width=cfg.width, k=cfg.k, norm=cfg.norm).to(device)
    first_x = data.first_batch(m)  # drawn for every scheme, as fit, so the data order is fit's
    initialize(model, cfg.scheme, direction=cfg.direction, batch=first_x if cfg.scheme == "datadep" else None,
               generator=torch.Generator(device).manual_seed(derived_seed(cfg.seed, "init")),
               stem_gamma=cfg.stem_gamma)
    return model


def _weight_decays(cfgs: list[RunConfig], kinds: list[str], device) -> list[torch.Tensor]:
    """(M,) weight decay per stacked parameter: 0 for g and biases of members that exempt them."""
    out = []
    for kind in kinds:
        exempt = [c.wd_exempt_gain_bias and kind in ("g", "b") for c in cfgs]
        out.append(torch.tensor([0.0 if e else c.weight_decay for c, e in zip(cfgs, exempt)], device=device))
    return out


@contextlib.contextmanager
def _num_threads(threads: int | None):
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# ---- evaluation -----------------------------------------------------------------------------------

@torch.inference_mode()
def _evaluate(model: StackedMLP, chunks) -> tuple[list, list]:
    """Per member (mean loss or None if not finite, accuracy) over ``chunks`` of (x (M, b, F), y (M, b))."""
    loss = correct = None
    n = 0
    for x, y in chunks:
        out = model(x)
        m, b = y.shape
        part = F.cross_entropy(out.flatten(0, 1), y.flatten(), reduction="none").view(m, b).sum(1, dtype=torch.float64)
        hits = (out.argmax(2) == y).sum(1)
        loss, correct = (part, hits) if loss is None else (loss + part, correct + hits)
        n += b
    if n == 0:
        return [None] * model.members, [None] * model.members
    means = [v / n for v in loss.tolist()]
    return [v if math.isfinite(v) else None for v in means], [c / n for c in correct.tolist()]


def _val_chunks(data: _MemberData):
    for s in range(0, data.val_idx.shape[1], EVAL_BATCH):
        idx = data.val_idx[:, s:s + EVAL_BATCH]
        yield data.x[idx].flatten(2), data.y[idx]


def _test_chunks(data: _MemberData, members: int):
    for s in range(0, len(data.test_y), EVAL_BATCH):
        x, y = data.test_x[s:s + EVAL_BATCH].flatten(1), data.test_y[s:s + EVAL_BATCH]
        yield x.expand(members, *x.shape), y.expand(members, *y.shape)


# ---- the run --------------------------------------------------------------------------------------

def fit_ensemble(cfgs: list[RunConfig]) -> list[RunResult]:
    """Train ``cfgs`` (one :func:`batchable_groups` group) as one stacked model; one RunResult per config.

    Each result is the one :func:`wninit.train.fit` returns for that config alone (spec §6.1), up to
    float32 rounding; ``wall_s`` is the group's wall time divided by its size and ``env["batched"]``
    the group's size. A lone config that cannot be batched (a CNN, a BN net, a Hessian task) is run by
    ``fit``. Nothing is written to disk: a group is one unit of work, rerun whole if interrupted.

    Examples:
        >>> base = RunConfig(dataset="mnist5k", depth=10, epochs=3, momentum=0.9)
        >>> results = fit_ensemble([base.replace(seed=s, lr=lr) for s, lr in [(1, 0.01), (2, 0.1)]])
    """
    cfgs = list(cfgs)
    if not cfgs or not all(isinstance(c, RunConfig) for c in cfgs):
        raise UserError("fit_ensemble needs a non-empty list of wninit.train.RunConfig")
    if len(cfgs) == 1 and not batchable(cfgs[0]):
        return [fit(cfgs[0])]
    if len(batchable_groups(cfgs)) != 1:
        raise UserError("these configs cannot train as one stacked model (they must all be WN or plain MLP "
                        "training runs equal in every field but " + ", ".join(MEMBER_FIELDS) +
                        "); split them with batchable_groups first")
    cfgs = [c.resolved() for c in cfgs]
    with _num_threads(cfgs[0].threads):
        return _fit_group(cfgs)


def _fit_group(cfgs: list[RunConfig]) -> list[RunResult]:
    started = time.perf_counter()
    device, M, c0 = resolve_device(cfgs[0].device), len(cfgs), cfgs[0]
    data = _MemberData(cfgs, device)
    model = StackedMLP([_member_model(c, data, m, device) for m, c in enumerate(cfgs)])
    opt = StackedSGD(list(model.params), torch.tensor([c.momentum for c in cfgs], device=device),
                     _weight_decays(cfgs, model.kinds, device))
    n_batches, acc_steps = len(data.loaders[0]), c0.accumulation_steps
    check_every = 1 if device.type == "cpu" else 32  # as fit: a finiteness check per step is free on CPU
    alive = torch.ones(M, dtype=torch.bool, device=device)
    rows = [[] for _ in range(M)]
    best, best_epoch, best_val = [None] * M, [None] * M, [None] * M
    diverged_at: list[dict | None] = [None] * M

    for epoch in range(c0.epochs):
        lrs = torch.tensor([epoch_lrs(c, epoch, n_batches) for c in cfgs], device=device).T  # (n_batches, M)
        loss_sum = torch.zeros(M, dtype=torch.float64, device=device)
        correct = torch.zeros(M, dtype=torch.long, device=device)
        losses = torch.empty(n_batches, M, device=device)
        seen, checked, stopped = 0, 0, []

        def check(upto: int) -> None:
            """Stop the members whose loss first went non-finite in steps [checked, upto) (spec §6.1:
            the run stops there; its best checkpoint so far is still tested)."""
            bad = ~torch.isfinite(losses[checked:upto]) & alive
            if not bool(bad.any()):
                return
            for m in bad.any(0).nonzero().flatten().tolist():
                diverged_at[m] = {"epoch": epoch, "step": checked + int(bad[:, m].nonzero()[0, 0])}
                alive[m] = False
                stopped.append(m)

        def freeze() -> None:
            """Give the stopped members finite weights and no momentum, after the step their NaN
            gradients went into: from now on they take steps of lr 0 on finite values."""
            for m in stopped:
                model.neutralize(m)
                opt.reset_member(m)
            stopped.clear()

        model.train()
        opt.zero_grad()
        for i, (x, y) in enumerate(data.batches()):
            out = model(x.flatten(2))
            b = y.shape[1]
            loss = F.cross_entropy(out.flatten(0, 1), y.flatten(), reduction="none").view(M, b).mean(1)
            losses[i] = loss.detach()
            if (i + 1) % check_every == 0:
                check(i + 1)
                checked = i + 1
            (loss.sum() / acc_steps if acc_steps > 1 else loss.sum()).backward()
            if (i + 1) % acc_steps == 0:
                opt.step(lrs[i] * alive)  # a stopped member takes steps of lr 0
                opt.zero_grad()
                freeze()
            loss_sum += loss.detach()
            correct += (out.detach().argmax(2) == y).sum(1)
            seen += b
        if checked < n_batches:
            check(n_batches)
        opt.zero_grad()  # a trailing incomplete accumulation group is dropped, as fit does
        freeze()
        if not bool(alive.any()):
            break

        val_loss, val_acc = _evaluate(model, _val_chunks(data))
        train_loss, train_acc = (loss_sum / n_batches).tolist(), (correct.double() / seen).tolist()
        for m in alive.nonzero().flatten().tolist():
            if diverged_at[m] is not None:
                continue
            c = cfgs[m]
            rows[m].append({"epoch": epoch, "train_loss": train_loss[m], "val_loss": val_loss[m],
                            "train_acc": train_acc[m], "val_acc": val_acc[m],
                            "lr": scheduled_lr(c.lr, c.epochs, c.schedule, epoch)})
            # spec §6.1: strictly better validation accuracy (the first of equals wins); no split -> last epoch
            if val_acc[m] is None or best_val[m] is None or val_acc[m] > best_val[m]:
                best[m], best_epoch[m], best_val[m] = model.member_state(m), epoch, val_acc[m]

    for m in range(M):
        if best[m] is not None:
            model.load_member_state(m, best[m])
    _, test_acc = _evaluate(model, _test_chunks(data, M))
    wall = (time.perf_counter() - started) / M
    results = []
    for m, c in enumerate(cfgs):
        best_row = rows[m][best_epoch[m]] if best_epoch[m] is not None else None
        results.append(RunResult(
            run_id=c.run_id, status="diverged" if diverged_at[m] else "completed",
            test_acc=test_acc[m] if best[m] is not None else None, best_val_acc=best_val[m],
            best_epoch=best_epoch[m], train_acc=best_row["train_acc"] if best_row else None,
            diverged_at=diverged_at[m], epochs_done=len(rows[m]), wall_s=wall, epochs=rows[m],
            config=c.to_dict(), env=_env(device, c.seed, M)))
    return results


def _env(device: torch.device, seed: int, members: int) -> dict:
    from .. import __version__
    return {"wninit": __version__, "torch": torch.__version__, "python": platform.python_version(),
            "device": str(device), "seed": seed, "threads": torch.get_num_threads(), "batched": members}
