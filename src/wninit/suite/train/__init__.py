"""One training run, as the reference runs it (docs/method.md §6.1): [`RunConfig`][wninit.suite.train.config.RunConfig] describes it, [`fit`][wninit.suite.train.single_run.fit]
runs it, [`RunResult`][wninit.suite.train.result.RunResult] is what comes back."""
from wninit.suite.train.config import RunConfig
from wninit.suite.train.runtime import resolve_device
from wninit.suite.train.single_run import fit
from wninit.suite.train.loop import evaluate, train_epoch
from wninit.suite.train.result import CSV_COLUMNS, RunResult
from wninit.suite.train.schedules import epoch_lrs, lr_at, scheduled_lr

__all__ = ["RunConfig", "RunResult", "fit", "resolve_device", "lr_at", "epoch_lrs", "scheduled_lr", "evaluate",
           "train_epoch", "CSV_COLUMNS"]
