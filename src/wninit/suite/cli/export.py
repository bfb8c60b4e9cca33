"""`wninit export FILE.db --format csv|parquet [--out PATH]`: a store's runs (and epochs) as a table.

One row per run: id, experiments, status, every RunConfig field, the metrics, the error, the wall time,
versions, host and timestamps. The epochs go beside it as `<out>_epochs.<ext>`.
"""
from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

from wninit.suite._files import atomic_path
from wninit.errors import UserError

__all__ = ["add_arguments", "run", "run_rows", "epoch_rows"]

HELP = "write a results store's runs and epochs as CSV or Parquet"  # its line in `wninit --help`

_RUN_COLUMNS = ("id", "experiments", "status", "error", "wall_s", "attempts", "wninit_version", "torch_version",
                "device", "threads", "host", "seed", "created_at", "started_at", "finished_at")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("store", metavar="FILE.db", help="a store written by wninit sweep")
    p.add_argument("--format", choices=("csv", "parquet"), default="csv", help="csv (default) or parquet")
    p.add_argument("--out", metavar="PATH", help="output file (default: FILE.csv / FILE.parquet beside the store)")


def run_rows(store) -> list[dict]:
    """One flat dict per run: id, experiments, status, the config fields, the run columns, the metrics."""
    from wninit.suite.sweep.store import METRIC_KEYS

    rows = []
    for r in store.runs():
        row = {"id": r.id, "experiments": ";".join(r.experiments), "status": r.status}
        row.update(r.config.to_dict())
        # after the config: the device and threads a run actually used replace the requested ones
        row.update({k: getattr(r, k) for k in _RUN_COLUMNS if k not in row or k in ("device", "threads")})
        row.update({k: r.metrics.get(k) for k in METRIC_KEYS})
        if isinstance(row["diverged_at"], dict):
            row["diverged_at"] = json.dumps(row["diverged_at"], sort_keys=True)
        rows.append(row)
    return rows


def epoch_rows(store) -> list[dict]:
    return [{"run_id": r.id, **e} for r in store.runs() for e in store.epochs(r.id)]


def _write_csv(path: Path, rows: list[dict], columns: list[str]) -> None:
    # atomic: a crash mid-write never leaves a half table where a full one was
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def _write_parquet(path: Path, rows: list[dict], columns: list[str]) -> None:
    import pandas as pd

    frame = pd.DataFrame(rows, columns=columns)
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)


def run(args) -> int:
    from wninit.suite.sweep.store import EPOCH_KEYS, Store

    src = Path(args.store)
    if src.is_dir():
        raise UserError(f"store {args.store!r} is a directory; pass the store file in it (FILE.db) written by `wninit sweep`")
    if not src.is_file():
        raise UserError(f"store {args.store!r} does not exist; pass a file written by `wninit sweep`")
    if args.format == "parquet":
        try:
            import pandas  # noqa: F401
            import pyarrow  # noqa: F401
        except ImportError:
            raise UserError("--format parquet needs pandas and pyarrow (pip install pandas pyarrow); "
                            "use --format csv") from None
    ext = "csv" if args.format == "csv" else "parquet"
    out = Path(args.out) if args.out else src.with_suffix(f".{ext}")
    epochs_out = out.with_name(f"{out.stem}_epochs{out.suffix or '.' + ext}")
    with Store(src, create=False) as store:
        runs, epochs = run_rows(store), epoch_rows(store)
    columns = list(runs[0]) if runs else list(_RUN_COLUMNS)
    write = _write_csv if args.format == "csv" else _write_parquet
    write(out, runs, columns)
    write(epochs_out, epochs, ["run_id", *EPOCH_KEYS])
    print(f"wrote {len(runs)} runs to {out} and {len(epochs)} epochs to {epochs_out}")
    return 0
