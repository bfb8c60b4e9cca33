"""One stacked group's run: every member's standalone ``fit`` (docs/method.md §6.1), all members in one loop.

:func:`run_group` builds each member as ``fit`` does, trains the stacked model epoch by epoch and
returns one :class:`~wninit.suite.train.RunResult` per member. A member is only ever touched through its own
slice of the stacked tensors, its own batches and its own hyper-parameters.
"""
from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from wninit.suite.train.config import RunConfig
from wninit.suite.train.loop import evaluate
from wninit.suite.train.protocol import RunRecord, build_member, check_interval
from wninit.suite.train.result import RunResult
from wninit.suite.train.runtime import env, resolve_device, run_scope, sum_dtype
from wninit.suite.train.schedules import epoch_lrs
from wninit.suite.sweep.ensemble_data import MemberData
from wninit.suite.sweep.ensemble_model import MemberView, StackedMLP, StackedSGD

__all__ = ["run_group"]


def _weight_decays(cfgs: list[RunConfig], kinds: list[str], device) -> list[torch.Tensor]:
    """(M,) weight decay per stacked parameter: 0 for the g and biases of members that exempt them."""
    return [torch.tensor([0.0 if c.wd_exempt_gain_bias and kind in ("g", "b") else c.weight_decay for c in cfgs],
                         device=device) for kind in kinds]


def _member_losses(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(M,) mean cross-entropy of each member's batch, by the very call a standalone step makes.

    NOTE: one batched ``cross_entropy`` over (M*B, C) gives the same gradients but sums each member's
    mean in another order (last-ulp differences in the logged loss); M small calls keep the logged
    losses, and so the stored metrics, equal to a standalone run's.
    """
    return torch.stack([F.cross_entropy(o, t) for o, t in zip(out.unbind(0), y.unbind(0))])


class _GroupRun:
    """The state of a group's run: the stacked model and optimizer, and per member its :class:`RunRecord`
    (epoch rows, best-validation checkpoint, divergence point)."""

    def __init__(self, cfgs: list[RunConfig], device: torch.device):
        self.cfgs, self.device, self.members = cfgs, device, len(cfgs)
        self.data = MemberData(cfgs, device)
        self.model = StackedMLP([build_member(c, self.data.in_shape, self.data.num_classes, device,
                                              lambda m=m: self.data.first_batch(m)) for m, c in enumerate(cfgs)])
        self.opt = StackedSGD(list(self.model.params), torch.tensor([c.momentum for c in cfgs], device=device),
                              _weight_decays(cfgs, self.model.kinds, device))
        self.alive = torch.ones(self.members, dtype=torch.bool, device=device)
        self.records = [RunRecord() for _ in cfgs]
        self._stopped: list[int] = []
        self.check_every = check_interval(device)

    def _check(self, losses: torch.Tensor, epoch: int, start: int, stop: int) -> None:
        """Stop the members whose loss first went non-finite in steps [start, stop)."""
        bad = ~torch.isfinite(losses[start:stop]) & self.alive
        if not bool(bad.any()):
            return
        for m in bad.any(0).nonzero().flatten().tolist():
            self.records[m].diverge(epoch, start + int(bad[:, m].nonzero()[0, 0]))
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
        loss_sum = torch.zeros(M, dtype=sum_dtype(self.device), device=self.device)
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
            val_loss, val_acc = evaluate(MemberView(self.model, m), *self.data.val(m))
            self.records[m].end_epoch(self.cfgs[m], epoch, train_loss[m], train_acc[m], val_loss, val_acc,
                                      lambda m=m: self.model.member_state(m))

    def results(self, wall_s: float) -> list[RunResult]:
        """Test every member's best checkpoint; one RunResult per member, as fit returns it."""
        out = []
        for m, (c, record) in enumerate(zip(self.cfgs, self.records)):
            test_acc = None
            if record.best is not None:  # none: diverged in its first epoch (the reference's test_acc -1)
                self.model.load_member_state(m, record.best)
                _, test_acc = evaluate(MemberView(self.model, m), self.data.test_x, self.data.test_y)
            # fit's environment record (the same keys as a standalone run) and the size of the group
            out.append(record.result(c, test_acc, wall_s / self.members,
                                     env(self.device, c.seed, batched=self.members)))
        return out


def run_group(cfgs: list[RunConfig]) -> list[RunResult]:
    """Train resolved, batchable ``cfgs`` of one group together; one RunResult per config, in order.

    Like ``fit``, the group runs on ``cfgs[0].threads`` threads and gives the caller's thread count and
    global random stream back when it ends.
    """
    device = resolve_device(cfgs[0].device)
    with run_scope(cfgs[0].threads, device, cfgs[0].portable):
        started = time.perf_counter()
        run = _GroupRun(cfgs, device)
        for epoch in range(cfgs[0].epochs):
            stats = run.train_epoch(epoch)
            if not bool(run.alive.any()):
                break
            run.end_epoch(epoch, *stats)
        return run.results(time.perf_counter() - started)
