"""The two inner loops of a run: one training epoch and one evaluation (docs/method.md §6.1), without host syncs.

Loss and accuracy are summed on the device and read once per epoch; evaluation runs in large batches
under `torch.inference_mode`.
"""
from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F

from wninit.suite.train.accel import as_input
from wninit.suite.train.runtime import sum_dtype

__all__ = ["train_epoch", "evaluate", "EVAL_BATCH"]

EVAL_BATCH = 1024  # evaluation keeps no graph, so batches far above the training batch fit


def _first_non_finite(losses: torch.Tensor) -> int | None:
    bad = ~torch.isfinite(losses)
    return int(bad.nonzero()[0, 0]) if bool(bad.any()) else None


def train_epoch(model: torch.nn.Module, optimizer: torch.optim.Optimizer, loader, lrs: list[float],
                accumulation: int = 1, check_every: int = 1, *, autocast=None,
                channels_last: bool = False) -> tuple[float | None, float | None, int | None]:
    """One epoch of SGD; returns `(train_loss, train_acc, None)` or `(None, None, step)` at the first
    mini-batch `step` whose loss is NaN or Inf.

    `lrs[i]` is set before mini-batch `i` (the warmup changes it per iteration). With
    `accumulation` > 1 each loss is divided by it and the optimizer steps every `accumulation`
    mini-batches; a trailing incomplete group is dropped, as the reference's `zero_grad` at the next
    epoch does. `train_loss` is the mean of the mini-batch losses and `train_acc` the running
    accuracy on the augmented batches, as the reference logs them. The finiteness of the loss is
    checked every `check_every` steps (1 on CPU, where it costs nothing); the step reported is the
    first bad one either way. `autocast` (a context factory, e.g. bf16) wraps the forward pass and the loss, and
    `channels_last` converts 4-d batches (train/accel.py).
    """
    model.train()
    device = next(model.parameters()).device
    loss_sum = torch.zeros((), dtype=sum_dtype(device), device=device)
    correct = torch.zeros((), dtype=torch.long, device=device)
    losses = torch.empty(len(loader), device=device) if check_every > 1 else None
    seen, checked, current_lr, i = 0, 0, None, -1
    optimizer.zero_grad(set_to_none=True)
    for i, (x, y) in enumerate(loader):
        if lrs[i] != current_lr:
            current_lr = lrs[i]
            for group in optimizer.param_groups:
                group["lr"] = current_lr
        x = as_input(x, channels_last)
        with autocast() if autocast is not None else contextlib.nullcontext():
            out = model(x)
            loss = F.cross_entropy(out, y)
        if losses is None:
            if not torch.isfinite(loss):
                return None, None, i
        else:
            losses[i] = loss.detach()
            if (i + 1) % check_every == 0:
                bad = _first_non_finite(losses[checked:i + 1])
                if bad is not None:
                    return None, None, checked + bad
                checked = i + 1
        (loss / accumulation if accumulation > 1 else loss).backward()
        if (i + 1) % accumulation == 0:
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        loss_sum += loss.detach()
        correct += (out.detach().argmax(1) == y).sum()
        seen += y.shape[0]
    if losses is not None and checked < i + 1:
        bad = _first_non_finite(losses[checked:i + 1])
        if bad is not None:
            return None, None, checked + bad
    optimizer.zero_grad(set_to_none=True)
    return float(loss_sum) / (i + 1), int(correct) / seen, None


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
