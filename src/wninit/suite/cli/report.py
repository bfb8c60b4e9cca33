"""`wninit report FILE.db --out DIR`: a store's results as the paper's figures and tables, beside its numbers.

Writes `DIR/report.md` (each experiment's table next to the paper's values of docs/method.md §7, its figure, and
the claims of docs/method.md §9 judged on what was run), one PNG per figure, and `DIR/claims.md`; prints the
claims table and the report's path.
"""
from __future__ import annotations

import argparse
import sys

__all__ = ["add_arguments", "run"]

HELP = "write a store's results as the paper's figures and tables (report.md + PNGs)"  # its line in `wninit --help`


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("store", metavar="FILE.db", help="a store written by wninit sweep or wninit reproduce")
    p.add_argument("--out", metavar="DIR", default="report", help="output folder (default: ./report)")


def run(args) -> int:
    from wninit.suite.report.render import claims_text, render_report

    report = render_report(args.store, args.out)
    print(claims_text(report.claims), file=sys.stdout)
    print(f"\nreport: {report.path} ({len(report.figures)} figures)", file=sys.stdout)
    return 0
