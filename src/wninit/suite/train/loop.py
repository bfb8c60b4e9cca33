"""The one training loop of the suite (docs/method.md §6.1), generic over M members trained side by side.

A single run is M = 1 (`Single`: one model and its `torch.optim.SGD`); a stacked group of small
MLPs is M > 1 (`wninit.suite.sweep.stacked.Stacked`: one model with stacked weights and a vectorised SGD).
Both plug into the same functions, so the protocol is written once:

- [`train_epoch`][wninit.suite.train.loop.train_epoch]: the per-step routine (lr per step, NaN/Inf check every k steps, gradient
  accumulation, the loss and accuracy sums kept on the device);
- `train_epochs`: the epoch loop, with the one divergence rule (the first NaN/Inf loss of a member
  ends that member's run; the others go on) and the validation that picks the best checkpoint;
- `test_best`: every member's best-validation checkpoint evaluated on the test split;
- [`evaluate`][wninit.suite.train.loop.evaluate]: one model on one split, in large batches under `torch.inference_mode`.
"""
from __future__ import annotations

import contextlib
import math
from typing import Callable, Protocol, Sequence

import torch
import torch.nn.functional as F

from wninit.suite.train.accel import as_input
from wninit.suite.train.runtime import sum_dtype

__all__ = ["Members", "Single", "train_epoch", "train_epochs", "test_best", "evaluate", "EVAL_BATCH"]

EVAL_BATCH = 1024  # evaluation keeps no graph, so batches far above the training batch fit


class Members(Protocol):
    """What the loop trains: `count` members on `device`, each with its own data, learning rates and state."""
    count: int
    device: torch.device

    def train(self) -> None:
        """Training mode for the members' modules."""

    def __len__(self) -> int:
        """Mini-batches per epoch (the same for every member)."""

    def batches(self):
        """One epoch of mini-batches, as `forward` takes them."""

    def lrs(self, epoch: int) -> Sequence:
        """The learning rates of `epoch`, one entry per mini-batch, as `set_lr` takes them."""

    def set_lr(self, lr) -> None: ...

    def forward(self, x, y) -> tuple[torch.Tensor, torch.Tensor, int]:
        """(loss (M,), correct predictions (M,), samples per member) of one mini-batch, with its graph."""

    def step(self, alive: torch.Tensor) -> None:
        """One optimizer step of the members still `alive` ((M,) bool)."""

    def zero_grad(self) -> None: ...

    def stop(self, members: list[int]) -> None:
        """`members` diverged and took their last step: keep them from producing NaN/Inf again."""

    def validate(self, m: int) -> tuple[float | None, float | None]: ...

    def member_state(self, m: int) -> object:
        """A copy of member `m`'s weights (its checkpoint)."""

    def load_member_state(self, m: int, state: object) -> None: ...

    def test(self, m: int) -> float | None:
        """Member `m`'s accuracy on the test split, with the weights it holds now."""


class Single:
    """One model and its optimizer as the loop's only member (a standalone run, M = 1).

    `trained` is the module the steps run (e.g. a compiled wrapper of `model`, sharing its parameters;
    train/accel.py); `val` and `test` are (x, y) on the device; `autocast` (a context factory, e.g.
    bf16) wraps the forward pass and the loss; `channels_last` converts 4-d batches.
    """
    count = 1

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, loader, *, trained=None,
                 lrs: Callable[[int], list[float]] | None = None, val=None, test=None, autocast=None,
                 channels_last: bool = False):
        self.model, self.optimizer, self.loader = model, optimizer, loader
        self.trained = trained if trained is not None else model
        self._lrs, self.val, self.test_split = lrs, val, test
        self.autocast, self.channels_last = autocast, channels_last
        self.device = next(model.parameters()).device
        self._lr = None

    def train(self) -> None:
        self.trained.train()

    def __len__(self) -> int:
        return len(self.loader)

    def batches(self):
        return self.loader

    def lrs(self, epoch: int) -> list[float]:
        return self._lrs(epoch)

    def set_lr(self, lr: float) -> None:
        if lr != self._lr:
            self._lr = lr
            for group in self.optimizer.param_groups:
                group["lr"] = lr

    def forward(self, x, y):
        x = as_input(x, self.channels_last)
        with self.autocast() if self.autocast is not None else contextlib.nullcontext():
            out = self.trained(x)
            loss = F.cross_entropy(out, y)
        return loss.reshape(1), (out.detach().argmax(1) == y).sum().reshape(1), y.shape[0]

    def step(self, alive: torch.Tensor) -> None:
        self.optimizer.step()

    def zero_grad(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)

    def stop(self, members: list[int]) -> None:
        pass  # its run is over: the loop trains no member that is not alive

    def validate(self, m: int):
        return evaluate(self.model, *self.val, autocast=self.autocast)

    def member_state(self, m: int) -> dict:
        return {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    def load_member_state(self, m: int, state: dict) -> None:
        self.model.load_state_dict(state)

    def test(self, m: int) -> float | None:
        return evaluate(self.model, *self.test_split, autocast=self.autocast)[1]


def _first_non_finite(losses: torch.Tensor, alive: torch.Tensor) -> dict[int, int]:
    """{member: its first step (row) whose loss is NaN/Inf} of the `alive` members, for a block of steps."""
    bad = ~torch.isfinite(losses) & alive
    if not bool(bad.any()):
        return {}
    return {m: int(bad[:, m].nonzero()[0, 0]) for m in bad.any(0).nonzero().flatten().tolist()}


def train_epoch(members: Members, lrs: Sequence, accumulation: int = 1, check_every: int = 1,
                alive: torch.Tensor | None = None) -> tuple[list | None, list | None, dict[int, int]]:
    """One epoch of every `alive` member; `(train_loss, train_acc, diverged)`, the first two per member.

    `diverged` maps each member whose loss first went NaN/Inf in this epoch to that mini-batch; the member
    is then dropped from `alive` (updated in place) and `Members.stop`-ped after the step its
    gradients went into; when no member is left the epoch ends at once and the losses are None.
    `lrs[i]` is set before mini-batch `i` (the warmup changes it per iteration). With `accumulation`
    > 1 each loss is divided by it and the optimizer steps every `accumulation` mini-batches; a trailing
    incomplete group is dropped, as the reference's `zero_grad` at the next epoch does. `train_loss` is
    the mean of the mini-batch losses and `train_acc` the running accuracy on the augmented batches, as
    the reference logs them. The losses are checked every `check_every` steps (1 on CPU, where it costs
    nothing); the step reported is the first bad one either way.
    """
    n, count, device = len(members), members.count, members.device
    if alive is None:
        alive = torch.ones(count, dtype=torch.bool, device=device)
    loss_sum = torch.zeros(count, dtype=sum_dtype(device), device=device)
    correct = torch.zeros(count, dtype=torch.long, device=device)
    losses = torch.empty(n, count, device=device)
    diverged: dict[int, int] = {}
    stopped: list[int] = []
    seen, checked, i = 0, 0, -1

    def check(stop: int) -> None:
        for m, step in _first_non_finite(losses[checked:stop], alive).items():
            diverged[m] = checked + step
            alive[m] = False
            stopped.append(m)

    def settle() -> None:  # the stopped members have taken the step their NaN went into
        if stopped:
            members.stop(stopped)
            stopped.clear()

    members.train()
    members.zero_grad()
    for i, (x, y) in enumerate(members.batches()):
        members.set_lr(lrs[i])
        loss, right, samples = members.forward(x, y)
        losses[i] = loss.detach()
        if (i + 1) % check_every == 0:
            check(i + 1)
            checked = i + 1
            if diverged and not bool(alive.any()):
                return None, None, diverged
        # The sum's gradient is each member's own loss gradient: the members share no parameter.
        total = loss.sum()
        (total / accumulation if accumulation > 1 else total).backward()
        if (i + 1) % accumulation == 0:
            members.step(alive)
            members.zero_grad()
            settle()
        loss_sum += loss.detach()
        correct += right
        seen += samples
    if checked < i + 1:
        check(i + 1)
        if diverged and not bool(alive.any()):
            return None, None, diverged
    members.zero_grad()
    settle()
    # Python divisions of the device sums (float64 on CPU/CUDA, float32 on MPS).
    return [v / (i + 1) for v in loss_sum.tolist()], [c / seen for c in correct.tolist()], diverged


def train_epochs(members: Members, cfgs: list, records: list, start_epoch: int, check_every: int, after_epoch: Callable[[int], None] | None = None) -> None:
    """The epochs `start_epoch` .. `cfgs[0].epochs` of every member (docs/method.md §6.1).

    Each epoch trains the members still running, then validates each, logs its row in its
    `RunRecord` and keeps its checkpoint if it is the best so far. The divergence rule:
    a member's first NaN/Inf loss ends its run at that epoch and step (its best checkpoint so far is still
    tested); the others go on; when none is left, the run is over. `after_epoch(epoch)` follows each
    epoch that some member finished (a single run writes its checkpoint there).
    """
    alive = torch.ones(members.count, dtype=torch.bool, device=members.device)
    for epoch in range(start_epoch, cfgs[0].epochs):
        train_loss, train_acc, diverged = train_epoch(members, members.lrs(epoch), cfgs[0].accumulation_steps,
                                                      check_every, alive)
        for m, step in diverged.items():
            records[m].diverge(epoch, step)
        if train_loss is None:
            break
        for m in alive.nonzero().flatten().tolist():
            val_loss, val_acc = members.validate(m)
            records[m].end_epoch(cfgs[m], epoch, train_loss[m], train_acc[m], val_loss, val_acc,
                                 lambda m=m: members.member_state(m))
        if after_epoch is not None:
            after_epoch(epoch)


def test_best(members: Members, records: list) -> list[float | None]:
    """Each member's best-validation checkpoint on the test split; None for a member without one (it diverged
    in its first epoch: the reference's "No checkpoints found", test_acc -1)."""
    accs = []
    for m, record in enumerate(records):
        if record.best is None:
            accs.append(None)
            continue
        members.load_member_state(m, record.best)
        accs.append(members.test(m))
    return accs


@torch.inference_mode()
def evaluate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
             batch_size: int = EVAL_BATCH, autocast=None) -> tuple[float | None, float | None]:
    """(mean loss, accuracy) of `model` in eval mode on `(x, y)`; (None, None) for an empty split.

    NOTE: the loss is the mean over samples; the reference averaged per-batch means, which weighs its
    last, smaller batch more (accuracy is the same). A non-finite loss is reported as None. `autocast`
    (a context factory, e.g. for bf16) wraps each forward pass.
    """
    n = int(y.shape[0])
    if n == 0:
        return None, None
    was_training = model.training
    model.eval()
    loss = torch.zeros((), dtype=sum_dtype(x.device), device=x.device)
    correct = torch.zeros((), dtype=torch.long, device=x.device)
    for start in range(0, n, batch_size):
        xb, yb = x[start:start + batch_size], y[start:start + batch_size]
        with autocast() if autocast is not None else contextlib.nullcontext():
            out = model(xb)
            batch_loss = F.cross_entropy(out, yb, reduction="sum")
        loss += batch_loss
        correct += (out.argmax(1) == yb).sum()
    model.train(was_training)
    mean = float(loss) / n
    return (mean if math.isfinite(mean) else None), int(correct) / n
