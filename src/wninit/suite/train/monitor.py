"""What a run shows while it trains: a progress bar over epochs (rich) and TensorBoard scalars, both optional.

Neither changes a result; each is skipped when its package is missing (TensorBoard with a warning, since it
was asked for by name).
"""
from __future__ import annotations

import warnings
from pathlib import Path

__all__ = ["Monitor"]


class _Bar:
    """A rich progress bar over epochs when asked for and installed; otherwise nothing."""

    def __init__(self, enabled: bool, total: int, done: int, label: str):
        self._progress = None
        if not enabled:
            return
        try:
            from rich.console import Console
            from rich.progress import Progress
        except ImportError:
            return
        # stderr, and gone when done: stdout keeps only the run's one-line summary
        self._progress = Progress(console=Console(stderr=True), transient=True)
        self._progress.start()
        self._task = self._progress.add_task(label, total=total, completed=done)

    def epoch(self, row: dict) -> None:
        if self._progress is not None:
            val = "n/a" if row["val_acc"] is None else f"{100 * row['val_acc']:.1f}%"
            self._progress.update(self._task, advance=1, description=f"epoch {row['epoch'] + 1} val {val}")

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()


def _tensorboard(enabled: bool, out: Path | None):
    if not enabled or out is None:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        warnings.warn("TensorBoard logging needs the tensorboard package (pip install tensorboard); skipped",
                      stacklevel=4)
        return None
    return SummaryWriter(str(out / "tb"))


class Monitor:
    """The progress bar (`progress`) and the TensorBoard log in `out/tb` (`tensorboard`) of one run;
    a context manager that closes both.

    Args:
        progress: show a rich progress bar over the `total` epochs on stderr, `done` of them already run.
        tensorboard: log every epoch row's numbers to `out/tb` (needs an `out` and the tensorboard package).
        out: the run directory, or None.
        total: the run's epochs.
        done: the epochs a resumed run already has.
        label: the bar's title.
    """

    def __init__(self, progress: bool, tensorboard: bool, out: Path | None, total: int, done: int, label: str):
        self._bar = _Bar(progress, total, done, label)
        self._tb = _tensorboard(tensorboard, out)

    def epoch(self, row: dict) -> None:
        """Show one finished epoch's row."""
        if self._tb is not None:
            for key, value in row.items():
                if key != "epoch" and value is not None:
                    self._tb.add_scalar(key, value, row["epoch"])
        self._bar.epoch(row)

    def close(self) -> None:
        self._bar.close()
        if self._tb is not None:
            self._tb.close()

    def __enter__(self) -> "Monitor":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
