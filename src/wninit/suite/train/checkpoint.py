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
import pickle
import warnings
import zipfile
from pathlib import Path

import torch

from wninit.suite._files import atomic_write_bytes
from wninit.errors import UserError
from wninit.suite.train.result import CSV_COLUMNS, RunResult

__all__ = ["CHECKPOINT", "CSV", "RESULT", "atomic_write_bytes", "write_csv", "write_result", "save_checkpoint",
           "load_checkpoint", "DiscardedCheckpoint", "read_result", "clear_run_files"]

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
    except (ValueError, TypeError) as exc:  # not JSON, or not a RunResult's fields
        warnings.warn(f"{path} cannot be read as a run's result ({exc}); run {cfg.run_id} is treated as "
                      "unfinished", DiscardedCheckpoint, stacklevel=2)
        return None
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


class DiscardedCheckpoint(UserWarning):
    """A run directory's checkpoint could not be resumed from, and the run starts over (the message says why)."""


# What an exact resume reads from a checkpoint (train/single_run.py); one without them is of another version.
RESUME_KEYS = ("run_id", "epoch", "model", "optimizer", "data_rng", "torch_rng", "rows", "best", "best_epoch",
               "best_val", "wall_s")


def load_checkpoint(out: Path, cfg, needs: tuple[str, ...] = RESUME_KEYS) -> dict | None:
    """The checkpoint in `out` for the run `cfg` (on CPU), None if there is none; one written under
    `cfg`'s schema-1 id (train/run_ids.py) is the same run and resumes. `needs`: the keys the run's resume
    reads (a supervised run's by default; an RL run reads its own).

    A checkpoint that cannot be resumed from (a torn or foreign file, or one of an incompatible version)
    is discarded with a `DiscardedCheckpoint` warning that says why, and the run starts over; any
    other failure to read it (the disk, permissions, a bug) is raised.
    """
    path = out / CHECKPOINT
    if not path.exists():
        return None
    state, reason = _read(path)
    if reason is None:
        missing = [k for k in needs if k not in state]
        if missing:
            reason = f"it was written by an incompatible wninit version (it has no {', '.join(missing)})"
    if reason is not None:
        warnings.warn(f"{path} cannot be resumed from: {reason}; run {cfg.run_id} starts over from epoch 0",
                      DiscardedCheckpoint, stacklevel=2)
        return None
    _check_same_run(out, "a checkpoint", state.get("run_id"), cfg)
    return {**state, "run_id": cfg.run_id}


def _read(path: Path) -> tuple[dict | None, str | None]:
    """(the checkpoint, None), or (None, why it is not one that can be resumed from)."""
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive
        return None, "it is not a torch checkpoint (a torn write or a foreign file)"
    with zipfile.ZipFile(path) as archive:
        damaged = archive.testzip()  # each member against its CRC, before the unpickler reads damaged bytes
    if damaged is not None:
        return None, f"its archive is damaged ({damaged} fails its checksum)"
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        return None, f"it holds objects that a weights-only load refuses ({str(exc).splitlines()[0]})"
    except RuntimeError as exc:
        if "PytorchStreamReader" not in str(exc):  # not the archive reader's: a bug or the machine, raised
            raise
        return None, f"its archive is damaged ({str(exc).splitlines()[0]})"
    if not isinstance(state, dict):
        return None, f"it holds a {type(state).__name__}, not a run's checkpoint"
    return state, None


def clear_run_files(out: Path) -> None:
    """Remove a previous run's files (only ours) before a fresh start."""
    for name in (RESULT, CHECKPOINT, CSV):
        path = out / name
        if path.exists():
            path.unlink()

