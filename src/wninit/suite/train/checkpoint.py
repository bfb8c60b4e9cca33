"""The files of a run directory, each written atomically (a temp file in the same folder, then `os.replace`).

- `checkpoint.pt`: after every epoch, everything an exact resume needs (model, optimizer, RNG states,
  the best state so far, the epoch rows, the run id);
- `epochs.csv`: the reference's per-epoch CSV (docs/method.md §6.1 "Logging"), rewritten whole every epoch;
- `result.json`: written once, at the very end, so a partial run never looks complete.
"""
from __future__ import annotations

import csv
import dataclasses
import io
from pathlib import Path

import torch

from wninit.suite._files import atomic_write_bytes
from wninit.errors import UserError
from wninit.suite.train.result import CSV_COLUMNS, RunResult

__all__ = ["CHECKPOINT", "CSV", "RESULT", "atomic_write_bytes", "write_csv", "write_result", "save_checkpoint",
           "load_checkpoint", "read_result", "clear_run_files"]

CHECKPOINT, CSV, RESULT = "checkpoint.pt", "epochs.csv", "result.json"


def write_csv(out: Path, rows: list[dict]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        writer.writerow(["" if row[c] is None else repr(row[c]) if isinstance(row[c], float) else row[c]
                         for c in CSV_COLUMNS])
    atomic_write_bytes(out / CSV, buf.getvalue().encode())


def write_result(out: Path, result: RunResult) -> None:
    atomic_write_bytes(out / RESULT, (result.to_json(indent=2) + "\n").encode())


def read_result(out: Path, cfg) -> RunResult | None:
    """The finished result in `out` for the run `cfg`; None if there is none; UserError if it is another run's.

    A result written under `cfg`'s schema-1 id (a wninit whose ids had no schema version, train/run_ids.py)
    is the same run: it comes back under the current id.
    """
    path = out / RESULT
    if not path.exists():
        return None
    try:
        result = RunResult.from_json(path.read_text())
    except (ValueError, TypeError):
        return None  # unreadable: treat the run as unfinished and redo it
    _check_same_run(out, "the result", result.run_id, cfg)
    return dataclasses.replace(result, run_id=cfg.run_id)


def _check_same_run(out: Path, what: str, stored_id, cfg) -> None:
    from wninit.suite.train.run_ids import same_run

    if stored_id is None or not same_run(stored_id, cfg):
        raise UserError(f"{out} holds {what} of run {stored_id}, not of this config ({cfg.run_id}); "
                        "choose another output directory or delete that one")


def save_checkpoint(out: Path, state: dict) -> None:
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(out / CHECKPOINT, buf.getvalue())


def load_checkpoint(out: Path, cfg) -> dict | None:
    """The checkpoint in `out` for the run `cfg` (on CPU), None if there is none or it is unreadable; one
    written under `cfg`'s schema-1 id (train/run_ids.py) is the same run and resumes."""
    path = out / CHECKPOINT
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # a torn or foreign file: start over rather than crash (writes are atomic, so rare)
        return None
    _check_same_run(out, "a checkpoint", state.get("run_id"), cfg)
    return {**state, "run_id": cfg.run_id}


def clear_run_files(out: Path) -> None:
    """Remove a previous run's files (only ours) before a fresh start."""
    for name in (RESULT, CHECKPOINT, CSV):
        path = out / name
        if path.exists():
            path.unlink()

