"""Atomic file writes: every file the package writes goes to a temporary file beside its target, is flushed to
disk, and only then replaces the target with `os.replace`.

A reader, a resumed run or a second process sees the old file or the new one, never half of one; a crash
mid-write leaves at most a hidden `.NAME.PID.XXXXXXXX.tmp` beside the target, which no loader reads. This
module is the only place that renames a file into place: run files, dataset caches and downloads, store
exports, converted checkpoints and reports all call it.
"""
from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_path", "atomic_write_bytes", "atomic_write_text"]


@contextmanager
def atomic_path(path: str | os.PathLike, *, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a fresh temporary path beside `path` for the caller to write; on a clean exit of the block the file
    is flushed to disk and moved over `path`; on an exception it is removed and `path` is left as it was.

    The folder of `path` must exist (a writer that creates it says so, e.g. `atomic_write_bytes`).
    The temporary file is created by the caller's writer, so it gets the usual permissions.

    Args:
        path: the file to write.
        suffix: the temporary file's suffix (a download uses `".part"`).

    Examples:
        >>> with atomic_path("model.pt") as tmp:
        ...     torch.save(model.state_dict(), tmp)
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}{suffix}")
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    # the data must be on disk before the rename is: else a power cut can leave the new name on an empty file
    fd = os.open(path, os.O_RDWR)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` atomically (`atomic_path`), creating its folder if needed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write `text` (UTF-8) to `path` atomically (`atomic_path`), creating its folder if needed."""
    atomic_write_bytes(path, text.encode("utf-8"))
