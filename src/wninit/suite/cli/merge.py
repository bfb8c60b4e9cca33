"""`wninit merge INTO.db FROM.db [FROM.db ...]`: gather stores into one.

A sweep split over machines (or a spec run on its own, as `fig2_cnn_depth` or `rl_minatar`) leaves its results
in another store; the report and the claims page read one. Finished runs, their epochs and the experiments
that asked for them are copied into INTO.db (created when missing); a run finished in both with different
metrics stops the merge with nothing written.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from wninit.errors import UserError

__all__ = ["add_arguments", "run"]

HELP = "copy the finished runs of other stores into one store"  # its line in `wninit --help`


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("into", metavar="INTO.db", help="the store to add to (created when missing)")
    p.add_argument("sources", nargs="+", metavar="FROM.db", help="stores to copy from (left unchanged)")


def run(args) -> int:
    from wninit.suite.sweep.store import Store

    into = Path(args.into).resolve()
    for source in args.sources:
        if not Path(source).is_file():
            raise UserError(f"{source} does not exist; pass the path of a wninit store to merge from")
        if Path(source).resolve() == into:
            raise UserError(f"{source} is the store being merged into; pass another store to merge from")
    with Store(args.into) as store:
        for source in args.sources:
            n = store.absorb(source)
            print(f"{source}: {n['copied']} finished runs copied, {n['added']} unfinished runs added as pending, "
                  f"{n['same']} already here with the same metrics")
    return 0
