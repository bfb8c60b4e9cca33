"""`wninit hessian --arch A --depth D [--schemes ...] [--seeds N]`: log Hessian spectral norm at init (Table 2).

For each scheme and seed 1..N, one run of task "hessian" through [`wninit.suite.train.fit`][wninit.suite.train.single_run.fit], the very run a
`table2_hessian` sweep stores (same seeding, data, init and power iteration, docs/method.md §7.6): `||H||_2` of
the mean cross-entropy over the first `--batches` batches of a shuffled training epoch. Prints `ln ||H||_2`
mean ± sample std over seeds per scheme, aggregated as `wninit report`'s Table 2.
"""
from __future__ import annotations

import argparse

from wninit.errors import UserError
from wninit.suite.cli.model_args import add_model_arguments, model_width

__all__ = ["add_arguments", "run", "table2"]

HELP = "log spectral norm of the loss Hessian at init, per scheme (Table 2)"  # its line in `wninit --help`


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model_arguments(p)
    p.add_argument("--schemes", default="proposed,datadep,pytorch-default,hanin",
                   help="comma-separated WN schemes (default: the four of Table 2)")
    p.add_argument("--seeds", type=int, default=3, help="seeds 1..N, as Table 2's spec (default 3)")
    p.add_argument("--dataset", default="mnist5k", help="mnist5k (embedded real MNIST, default), synthetic, or any "
                   "dataset wninit.suite.data.load_dataset knows")
    p.add_argument("--data-root", default=None, help="folder of downloaded datasets (default $WNINIT_DATA)")
    p.add_argument("--batches", type=int, default=4, help="training batches in the loss (default 4)")
    p.add_argument("--batch-size", type=int, default=64, help="images per batch (default 64)")
    p.add_argument("--iters", type=int, default=20, help="power iterations (default 20)")


def _schemes(text: str) -> list[str]:
    from wninit.init.schemes import WN_SCHEMES

    schemes = [s.strip() for s in text.split(",") if s.strip()]
    bad = [s for s in schemes if s not in WN_SCHEMES]
    if not schemes or bad:
        raise UserError(f"--schemes must list WN schemes among {', '.join(WN_SCHEMES)}, got {text!r}")
    return schemes


def table2(base, schemes, seeds) -> dict:
    """`{scheme: Stat}` of `ln ||H||_2` at init: `base` (a RunConfig of task "hessian") run by `fit` for each
    scheme and seed, aggregated by `wninit.suite.report.tables.hessian_table` (a non-finite norm is counted as
    diverged and has no value)."""
    from types import SimpleNamespace

    from wninit.suite.report.tables import hessian_table
    from wninit.suite.train import fit

    runs = []
    for scheme in schemes:
        for seed in seeds:
            result = fit(base.replace(scheme=scheme, seed=seed))
            runs.append(SimpleNamespace(config=result.config, status=result.status, metrics=result.metrics()))
    (by_series,) = hessian_table(runs).values()  # one dataset and architecture
    return {scheme: by_series[(scheme, base.direction)] for scheme in schemes}


def run(args) -> int:
    from wninit.suite.train import RunConfig

    schemes = _schemes(args.schemes)
    for name in ("seeds", "batches", "batch_size", "iters"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    # a bad --arch/--depth/--dataset fails here, before any Hessian is computed
    base = RunConfig(task="hessian", dataset=args.dataset, data_root=args.data_root, arch=args.arch, depth=args.depth,
                     width=model_width(args), k=args.k, norm="wn", direction=args.direction, epochs=1,
                     batch_size=args.batch_size, hessian_batches=args.batches, hessian_iters=args.iters)
    print(f"{args.arch} depth {args.depth} on {args.dataset}: {args.batches} x {args.batch_size} images, "
          f"{args.iters} power iterations, {args.seeds} seeds")
    for scheme, stat in table2(base, schemes, range(1, args.seeds + 1)).items():
        print(f"{scheme:<16} {stat.text(digits=3)}  (ln ||H||_2)")
    print("ln is the natural log (the base of the paper's log is not known; docs/method.md §7.6)")
    return 0
