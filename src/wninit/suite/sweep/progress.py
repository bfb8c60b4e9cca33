"""One progress bar for a sweep: done / diverged / failed counts and an ETA.

rich draws it when installed and the stream is a terminal; otherwise one plain line per finished run
(what a log file or CI wants).
"""
from __future__ import annotations

import sys
import time

__all__ = ["SweepProgress", "format_duration"]


def format_duration(seconds: float | None) -> str:
    if seconds is None or seconds != seconds:
        return "?"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s" if m else f"{s}s"


class SweepProgress:
    """`total` runs in scope, `finished` of them already done before this session."""

    def __init__(self, total: int, finished: int, *, enabled: bool = True, stream=None, label: str = "sweep"):
        self.total, self.before = total, finished
        self.counts = {"completed": 0, "diverged": 0, "failed": 0}
        self.started = time.perf_counter()
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self._rich = None
        if enabled and getattr(self.stream, "isatty", lambda: False)():
            try:
                from rich.console import Console
                from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
            except ImportError:
                pass
            else:
                self._rich = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                      TextColumn("{task.fields[counts]}"), console=Console(file=self.stream))
                self._rich.start()
                self._task = self._rich.add_task(label, total=total, completed=finished, counts=self._text())

    @property
    def done_now(self) -> int:
        return sum(self.counts.values())

    def eta(self) -> float | None:
        """Remaining runs x this session's seconds per run (parallelism included)."""
        left = self.total - self.before - self.done_now
        if self.done_now == 0:
            return None
        return left * (time.perf_counter() - self.started) / self.done_now

    def _text(self) -> str:
        c = self.counts
        return (f"done {c['completed']}  diverged {c['diverged']}  failed {c['failed']}  "
                f"ETA {format_duration(self.eta()) if self.done_now else '?'}")

    def update(self, run_id: str, status: str, note: str = "") -> None:
        self.counts[status] = self.counts.get(status, 0) + 1
        if not self.enabled:
            return
        if self._rich is not None:
            self._rich.update(self._task, advance=1, counts=self._text())
        else:
            n = self.before + self.done_now
            print(f"[{n}/{self.total}] {run_id} {status}{(': ' + note) if note else ''} | {self._text()}",
                  file=self.stream, flush=True)

    def close(self) -> None:
        if self._rich is not None:
            self._rich.stop()
            self._rich = None
