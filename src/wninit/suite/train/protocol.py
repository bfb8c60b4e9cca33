"""The steps of the reference protocol (docs/method.md §6.1) that every way of training a run shares.

A single run ([`wninit.suite.train.fit`][wninit.suite.train.single_run.fit]) and each member of a stacked group (`wninit.suite.sweep.ensemble`)
go through the same functions, so they cannot drift apart:

- `load_data`: the dataset, its seeded validation split, and the batch-size check;
- `build_member`: global seed -> model -> first shuffled, augmented batch -> init -> peer;
- `check_interval`: how often the loss is checked for NaN/Inf;
- `weight_decay`: the one weight-decay rule (which parameters a run exempts);
- `RunRecord`: the epoch rows, the best-validation checkpoint, the divergence point, and the
  [`RunResult`][wninit.suite.train.result.RunResult] they make.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

from wninit.errors import UserError
from wninit.suite.train.config import RunConfig
from wninit.suite.train.result import RunResult
from wninit.suite.train.runtime import derived_seed, set_seed
from wninit.suite.train.schedules import scheduled_lr

__all__ = ["load_data", "build_member", "check_interval", "weight_decay", "SCALE_KINDS", "improves", "RunRecord"]

# The kinds of parameter that set scales and shifts, not directions: a WN gain g, a BN weight, a bias.
SCALE_KINDS = ("g", "bn", "b")


def load_data(cfg: RunConfig):
    """`cfg`'s dataset with its seeded validation split; a batch larger than the training split is a
    `UserError` (raised before the run touches any file)."""
    from wninit.suite.data import load_dataset

    data = load_dataset(cfg.dataset, root=cfg.data_root, download=cfg.download, val_fraction=cfg.val_fraction,
                        seed=cfg.seed)
    n = len(data.train)
    if cfg.batch_size > n:
        raise UserError(f"batch_size {cfg.batch_size} is larger than the {n}-sample training split of "
                        f"{cfg.dataset}; use a batch size of at most {n}")
    return data


def build_member(cfg: RunConfig, in_shape: tuple, num_classes: int, device: torch.device,
                 first_batch: Callable[[], torch.Tensor] | None) -> torch.nn.Module:
    """`cfg`'s model on `device`, initialized by its scheme and turned into its peer.

    The global streams are seeded with `cfg.seed` first (the reference's `set_seed`, docs/method.md §6.1:
    the plain head keeps PyTorch's default init, drawn from them); the caller runs this inside
    `rng_scope`, which gives its own streams back after. `first_batch` draws the run's
    first shuffled, augmented training batch (docs/method.md §4); None skips the init and the peer (a
    resumed run loads its weights instead).
    """
    from wninit.models import build_model
    from wninit.init.schemes import initialize

    set_seed(cfg.seed, device)
    model = build_model(cfg.arch, in_shape=in_shape, num_classes=num_classes, depth=cfg.depth, width=cfg.width,
                        k=cfg.k, norm=cfg.norm, reduced_memory=cfg.reduced_memory,
                        bn_reference=cfg.bn_reference).to(device)
    if first_batch is None:
        return model
    # docs/method.md §4: the reference draws this batch for every scheme (datadep uses it); drawing it always
    # keeps the data order of a seed the same across schemes.
    first_x = first_batch()
    initialize(model, cfg.scheme, direction=cfg.direction, batch=first_x if cfg.scheme == "datadep" else None,
               generator=torch.Generator(device).manual_seed(derived_seed(cfg.seed, "init")),
               stem_gamma=cfg.stem_gamma)
    if cfg.padding_gain:
        from wninit.init.padding import padding_aware_gains_
        padding_aware_gains_(model, first_x)
    for m in model.modules() if cfg.freeze_conv_bias else ():  # a parameter without grad is skipped by SGD
        if isinstance(m, torch.nn.modules.conv._ConvNd) and m.bias is not None:
            m.bias.requires_grad_(False)
    return _apply_peer(cfg, model, first_x, device)


def _apply_peer(cfg: RunConfig, model: torch.nn.Module, batch: torch.Tensor, device: torch.device):
    """The run's normalizer-free peer (`cfg.peer`, [`wninit.peers`][]) after the scheme; the model to train."""
    if cfg.peer == "none":
        return model
    from wninit.peers import apply, parse_peer

    name, options = parse_peer(cfg.peer)
    generator = torch.Generator(device).manual_seed(derived_seed(cfg.seed, "peer"))
    return apply(model, name, batch=batch, generator=generator, **options).to(device)


def check_interval(device: torch.device) -> int:
    """Steps between two finiteness checks of the loss: 1 on CPU, where a check costs nothing; 32 on an
    accelerator, where each check syncs the host (the first bad step is found either way)."""
    return 1 if device.type == "cpu" else 32


def weight_decay(cfg: RunConfig, kind: str) -> float:
    """The weight decay of a parameter of `kind` ("v", "w" or one of `SCALE_KINDS`) in `cfg`'s run.

    docs/method.md §6.1: the reference decays every parameter; `wd_exempt_gain_bias` exempts the scales and
    shifts (g, BN weights, biases), which set no direction.
    """
    return 0.0 if cfg.wd_exempt_gain_bias and kind in SCALE_KINDS else cfg.weight_decay


def improves(val_acc: float | None, best_val: float | None) -> bool:
    """docs/method.md §6.1: an epoch becomes the best when its validation accuracy is strictly higher (the
    first of equals wins); without a validation split every epoch does, so the last one is tested."""
    return val_acc is None or best_val is None or val_acc > best_val


@dataclass
class RunRecord:
    """One run's bookkeeping over its epochs: the rows of the reference's CSV (docs/method.md §6.1 "Logging"),
    the best-validation checkpoint so far and the NaN/Inf point, if any."""
    rows: list = field(default_factory=list)
    best: object = None  # the best epoch's weights, in the form of whoever trains the run
    best_epoch: int | None = None
    best_val: float | None = None
    diverged_at: dict | None = None

    def end_epoch(self, cfg: RunConfig, epoch: int, train_loss: float, train_acc: float,
                  val_loss: float | None, val_acc: float | None, state: Callable[[], object]) -> dict:
        """Log epoch `epoch`'s row and keep `state()` if it is the best so far; returns the row."""
        row = {"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss, "train_acc": train_acc,
               "val_acc": val_acc, "lr": scheduled_lr(cfg.lr, cfg.epochs, cfg.schedule, epoch)}
        self.rows.append(row)
        if improves(val_acc, self.best_val):
            self.best, self.best_epoch, self.best_val = state(), epoch, val_acc
        return row

    def diverge(self, epoch: int, step: int) -> None:
        """docs/method.md §6.1: the first NaN/Inf loss ends the run; its best checkpoint so far is still tested."""
        self.diverged_at = {"epoch": epoch, "step": step}

    def checkpoint(self) -> dict:
        """What a checkpoint keeps of the record (a diverged run is over: it is never resumed)."""
        return {"rows": self.rows, "best": self.best, "best_epoch": self.best_epoch, "best_val": self.best_val}

    @classmethod
    def from_checkpoint(cls, state: dict) -> "RunRecord":
        return cls(rows=state["rows"], best=state["best"], best_epoch=state["best_epoch"], best_val=state["best_val"])

    def result(self, cfg: RunConfig, test_acc: float | None, wall_s: float, env: dict) -> RunResult:
        """The run's [`RunResult`][wninit.suite.train.result.RunResult]; `test_acc` is the best checkpoint's (None without one: the
        reference's -1), `train_acc` the best epoch's running training accuracy."""
        best_row = self.rows[self.best_epoch] if self.best_epoch is not None else None
        return RunResult(run_id=cfg.run_id, status="diverged" if self.diverged_at else "completed",
                         test_acc=test_acc, best_val_acc=self.best_val, best_epoch=self.best_epoch,
                         train_acc=best_row["train_acc"] if best_row else None, diverged_at=self.diverged_at,
                         epochs_done=len(self.rows), wall_s=wall_s, epochs=self.rows, config=cfg.to_dict(), env=env)
