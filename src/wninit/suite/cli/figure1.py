"""`wninit figure1 --out DIR [--seed S] [--samples N]`: the paper's Figure 1 on synthetic data (docs/method.md §7.1).

Writes `figure1.png` (the paper's 2x2 layout) and `figure1.csv` (columns panel,init,width,index,mean,std).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from wninit.errors import UserError

__all__ = ["add_arguments", "run"]

HELP = "reproduce the paper's Figure 1 (norm ratios on synthetic data)"  # its line in `wninit --help`


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, metavar="DIR", help="folder for figure1.png and figure1.csv (created)")
    p.add_argument("--seed", type=int, default=0, help="seed of inputs, widths and weights (default 0)")
    p.add_argument("--samples", type=int, default=1000, help="input samples per curve (default 1000, the paper's)")


def run(args) -> int:
    from wninit.diagnostics.plot import plot_figure1
    from wninit.diagnostics.synthetic import figure1, rows_to_csv

    if args.samples < 1:
        raise UserError(f"--samples must be at least 1, got {args.samples}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {str(out)!r} is a file: give a folder for figure1.png and figure1.csv")
    out.mkdir(parents=True, exist_ok=True)
    rows = figure1(seed=args.seed, samples=args.samples)
    csv_path = rows_to_csv(rows, out / "figure1.csv")
    png_path = plot_figure1(rows, out / "figure1.png")
    print(f"wrote {png_path} and {csv_path} ({len(rows)} rows, seed {args.seed}, {args.samples} samples)")
    return 0
