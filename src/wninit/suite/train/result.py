"""`RunResult`: what one run returns and what `result.json` holds (the reference's status.json, docs/method.md §6.1)."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields

__all__ = ["RunResult", "CSV_COLUMNS", "STATUSES", "FINISHED", "WAITING", "FAILED"]

# docs/method.md §6.1 "Logging": the reference CSV's columns, in its order.
CSV_COLUMNS = ("epoch", "train_loss", "val_loss", "train_acc", "val_acc", "lr")
# The statuses of a run, one vocabulary for the run, the store, the sweep and the report: a run waits (pending,
# or running now), finishes (completed, or diverged: a NaN/Inf loss is a result, docs/method.md §6.1) or fails
# (an error, retried only when asked).
STATUSES = ("pending", "running", "completed", "diverged", "failed")
WAITING = ("pending", "running")
FINISHED = ("completed", "diverged")
FAILED = "failed"
# The fields that a rerun of the same config on the same machine reproduces bit for bit.
METRIC_FIELDS = ("run_id", "status", "test_acc", "best_val_acc", "best_epoch", "train_acc", "diverged_at",
                 "epochs_done", "log_hessian_norm", "epochs", "returns")


@dataclass
class RunResult:
    """The outcome of [`wninit.suite.train.fit`][wninit.suite.train.single_run.fit].

    `test_acc` is the accuracy on the test split of the best-validation checkpoint (the last epoch's
    when there is no validation split); None when the run diverged before its first epoch ended (the
    reference's -1). `train_acc` is the running training accuracy of the best epoch. `diverged_at`
    is `{"epoch", "step"}` (0-based epoch, 0-based mini-batch within it) of the first NaN/Inf loss.
    `epochs` holds one dict per finished epoch with the reference's CSV columns.
    """
    run_id: str
    status: str
    test_acc: float | None = None
    best_val_acc: float | None = None
    best_epoch: int | None = None
    train_acc: float | None = None
    diverged_at: dict | None = None
    epochs_done: int = 0
    wall_s: float = 0.0
    log_hessian_norm: float | None = None
    returns: list | None = None  # task "rl": [env steps, mean return of the last 100 episodes] per chunk
    epochs: list = field(default_factory=list)
    config: dict = field(default_factory=dict)
    env: dict = field(default_factory=dict)

    def metrics(self) -> dict:
        """Everything but the wall time, the environment and the config: what determinism compares."""
        return {name: getattr(self, name) for name in METRIC_FIELDS}

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self, **kw) -> str:
        return json.dumps(self.to_dict(), **kw)

    @classmethod
    def from_dict(cls, d: dict) -> "RunResult":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    @classmethod
    def from_json(cls, text: str) -> "RunResult":
        return cls.from_dict(json.loads(text))

    def summary(self) -> str:
        """One line: id, status, test/val accuracy, best epoch, wall time."""
        def pct(v):
            return "n/a" if v is None else f"{100 * v:.2f}%"
        if self.log_hessian_norm is not None or self.config.get("task") == "hessian":
            value = "n/a" if self.log_hessian_norm is None else f"{self.log_hessian_norm:.4f}"
            return f"run {self.run_id}: {self.status}, log Hessian spectral norm at init {value} ({self.wall_s:.1f} s)"
        if self.returns:
            steps, ret = self.returns[-1]
            value = "n/a" if ret is None else f"{ret:.2f}"
            return f"run {self.run_id}: {self.status} after {steps} env steps, return {value} ({self.wall_s:.1f} s)"
        where = ""
        if self.diverged_at:
            where = f" in epoch {self.diverged_at['epoch'] + 1} step {self.diverged_at['step'] + 1}"
        best = "" if self.best_epoch is None else f" (epoch {self.best_epoch + 1})"  # stored from 0, said from 1
        return (f"run {self.run_id}: {self.status}{where} after {self.epochs_done} epochs, test acc {pct(self.test_acc)}, "
                f"best val acc {pct(self.best_val_acc)}{best}, {self.wall_s:.1f} s")
