"""One stacked group's run: every member's standalone ``fit`` (docs/method.md §6.1), all members in one loop.

:func:`run_group` builds each member as ``fit`` does, trains the stacked model epoch by epoch and
returns one :class:`~wninit.train.RunResult` per member. A member is only ever touched through its own
slice of the stacked tensors, its own batches and its own hyper-parameters.
"""
from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from ..train.config import RunConfig
from ..train.fit import _env as fit_env
from ..train.fit import derived_seed, resolve_device
from ..train.loop import evaluate
from ..train.result import RunResult
from ..train.schedules import epoch_lrs, scheduled_lr
from .ensemble_data import MemberData
from .ensemble_model import MemberView, StackedMLP, StackedSGD

__all__ = ["run_group"]


def _member_model(cfg: RunConfig, data: MemberData, m: int, device: torch.device):
    """Member m's standalone MLP, built and initialized in fit's order (docs/method.md §4, §6.1)."""
    from ..models import build_model
    from ..schemes import initialize

    torch.manual_seed(cfg.seed)  # docs/method.md §6.1 set_seed: the head's default init comes from this stream
    model = build_model(cfg.arch, in_shape=data.in_shape, num_classes=data.num_classes, depth=cfg.depth,
                        width=cfg.width, k=cfg.k, norm=cfg.norm).to(device)
    first_x = data.first_batch(m)  # drawn for every scheme, as fit, so the data order is fit's
    initialize(model, cfg.scheme, direction=cfg.direction, batch=first_x if cfg.scheme == "datadep" else None,
               generator=torch.Generator(device).manual_seed(derived_seed(cfg.seed, "init")),
               stem_gamma=cfg.stem_gamma)
    return model


def _weight_decays(cfgs: list[RunConfig], kinds: list[str], device) -> list[torch.Tensor]:
    """(M,) weight decay per stacked parameter: 0 for the g and biases of members that exempt them."""
    return [torch.tensor([0.0 if c.wd_exempt_gain_bias and kind in ("g", "b") else c.weight_decay for c in cfgs],
                         device=device) for kind in kinds]


def _sum_dtype(device: torch.device) -> torch.dtype:
    return torch.float32 if device.type == "mps" else torch.float64  # as train/loop.py: MPS has no float64


def _member_losses(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(M,) mean cross-entropy of each member's batch, by the very call a standalone step makes.

    NOTE: one batched ``cross_entropy`` over (M*B, C) gives the same gradients but sums each member's
    mean in another order (last-ulp differences in the logged loss); M small calls keep the logged
    losses, and so the stored metrics, equal to a standalone run's.
    """
    return torch.stack([F.cross_entropy(o, t) for o, t in zip(out.unbind(0), y.unbind(0))])


class _GroupRun:
    """The state of a group's run: the stacked model and optimizer, and per member its epoch rows,
    best-validation checkpoint and divergence point."""

    def __init__(self, cfgs: list[RunConfig], device: torch.device):
        self.cfgs, self.device, self.members = cfgs, device, len(cfgs)
        self.data = MemberData(cfgs, device)
        self.model = StackedMLP([_member_model(c, self.data, m, device) for m, c in enumerate(cfgs)])
        self.opt = StackedSGD(list(self.model.params), torch.tensor([c.momentum for c in cfgs], device=device),
                              _weight_decays(cfgs, self.model.kinds, device))
        self.alive = torch.ones(self.members, dtype=torch.bool, device=device)
        self.rows = [[] for _ in cfgs]
        self.best, self.best_epoch, self.best_val = [None] * self.members, [None] * self.members, [None] * self.members
        self.diverged_at: list[dict | None] = [None] * self.members
        self._stopped: list[int] = []
        # As fit: a finiteness check per step costs nothing on CPU; on an accelerator it syncs, so every 32.
        self.check_every = 1 if device.type == "cpu" else 32

    def _check(self, losses: torch.Tensor, epoch: int, start: int, stop: int) -> None:
        """Stop the members whose loss first went non-finite in steps [start, stop) (docs/method.md §6.1: the run
        ends there; its best checkpoint so far is still tested)."""
        bad = ~torch.isfinite(losses[start:stop]) & self.alive
        if not bool(bad.any()):
            return
        for m in bad.any(0).nonzero().flatten().tolist():
            self.diverged_at[m] = {"epoch": epoch, "step": start + int(bad[:, m].nonzero()[0, 0])}
            self.alive[m] = False
            self._stopped.append(m)

    def _freeze(self) -> None:
        """Give the stopped members finite weights and no momentum, after the step their NaN gradients
        went into: from then on they take steps of lr 0 on finite values, and never produce NaN again."""
        for m in self._stopped:
            self.model.neutralize(m)
            self.opt.reset_member(m)
        self._stopped.clear()

    def train_epoch(self, epoch: int) -> tuple[list[float], list[float]]:
        """One epoch for every member (train/loop.py ``train_epoch``); (train loss, train acc) per member."""
        n, acc_steps, M = len(self.data), self.cfgs[0].accumulation_steps, self.members
        lrs = torch.tensor([epoch_lrs(c, epoch, n) for c in self.cfgs], device=self.device).T  # (n, M)
        losses = torch.empty(n, M, device=self.device)
        loss_sum = torch.zeros(M, dtype=_sum_dtype(self.device), device=self.device)
        correct = torch.zeros(M, dtype=torch.long, device=self.device)
        seen, checked = 0, 0
        self.model.train()
        self.opt.zero_grad()
        for i, (x, y) in enumerate(self.data.batches()):
            out = self.model(x)
            loss = _member_losses(out, y)
            losses[i] = loss.detach()
            if (i + 1) % self.check_every == 0:
                self._check(losses, epoch, checked, i + 1)
                checked = i + 1
            # The sum's gradient is each member's own loss gradient: the members share no parameter.
            (loss.sum() / acc_steps if acc_steps > 1 else loss.sum()).backward()
            if (i + 1) % acc_steps == 0:
                self.opt.step(lrs[i] * self.alive)  # a stopped member takes steps of lr 0
                self.opt.zero_grad()
                self._freeze()
            loss_sum += loss.detach()
            correct += (out.detach().argmax(2) == y).sum(1)
            seen += y.shape[1]
        self._check(losses, epoch, checked, n)
        self.opt.zero_grad()  # a trailing incomplete accumulation group is dropped, as fit does
        self._freeze()
        # As fit: Python divisions of the device sums (float64 on CPU/CUDA, float32 on MPS).
        return [v / n for v in loss_sum.tolist()], [c / seen for c in correct.tolist()]

    def end_epoch(self, epoch: int, train_loss: list[float], train_acc: list[float]) -> None:
        """Validate, log the row and keep the best checkpoint of every member still running."""
        for m in self.alive.nonzero().flatten().tolist():
            c = self.cfgs[m]
            val_loss, val_acc = evaluate(MemberView(self.model, m), *self.data.val(m))
            self.rows[m].append({"epoch": epoch, "train_loss": train_loss[m], "val_loss": val_loss,
                                 "train_acc": train_acc[m], "val_acc": val_acc,
                                 "lr": scheduled_lr(c.lr, c.epochs, c.schedule, epoch)})
            # docs/method.md §6.1: strictly better validation accuracy (the first of equals wins); no split -> last epoch
            if val_acc is None or self.best_val[m] is None or val_acc > self.best_val[m]:
                self.best[m], self.best_epoch[m], self.best_val[m] = self.model.member_state(m), epoch, val_acc

    def results(self, wall_s: float) -> list[RunResult]:
        """Test every member's best checkpoint; one RunResult per member, as fit returns it."""
        out = []
        for m, c in enumerate(self.cfgs):
            test_acc = None
            if self.best[m] is not None:  # none: diverged in its first epoch (the reference's test_acc -1)
                self.model.load_member_state(m, self.best[m])
                _, test_acc = evaluate(MemberView(self.model, m), self.data.test_x, self.data.test_y)
            best_row = self.rows[m][self.best_epoch[m]] if self.best_epoch[m] is not None else None
            out.append(RunResult(
                run_id=c.run_id, status="diverged" if self.diverged_at[m] else "completed",
                test_acc=test_acc, best_val_acc=self.best_val[m],
                best_epoch=self.best_epoch[m], train_acc=best_row["train_acc"] if best_row else None,
                diverged_at=self.diverged_at[m], epochs_done=len(self.rows[m]), wall_s=wall_s / self.members,
                epochs=self.rows[m], config=c.to_dict(), env=_env(self.device, c.seed, self.members)))
        return out


def run_group(cfgs: list[RunConfig]) -> list[RunResult]:
    """Train resolved, batchable ``cfgs`` of one group together; one RunResult per config, in order."""
    started = time.perf_counter()
    run = _GroupRun(cfgs, resolve_device(cfgs[0].device))
    for epoch in range(cfgs[0].epochs):
        stats = run.train_epoch(epoch)
        if not bool(run.alive.any()):
            break
        run.end_epoch(epoch, *stats)
    return run.results(time.perf_counter() - started)


def _env(device: torch.device, seed: int, members: int) -> dict:
    # fit's environment record (the same keys as a standalone run) and the size of the group.
    return {**fit_env(device, seed), "batched": members}
