"""`wninit reproduce [--out DIR]`: the paper's main results on this machine, offline, in about 10 minutes.

1. Figure 1 (synthetic data, docs/method.md §7.1), 8 network draws: `DIR/figure1.png` and `DIR/figure1.csv`.
2. The `quick` profiles of the MLP experiments on the embedded real MNIST (mnist5k): Fig. 2 depth and
   Fig. 2 hyper-parameters, and the Table 2 Hessian at init on the real 8x8 digits, through the sweep
   runner into `DIR/store.db`. Resumable: rerunning the command continues where it stopped.
3. `DIR/report.md` with the figures, the tables beside the paper's numbers and the claims of docs/method.md §9,
   whose table is printed at the end.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from wninit.errors import UserError
from wninit.suite.experiments import find_experiments, reproduced_at

__all__ = ["add_arguments", "run"]

HELP = "run Figure 1 and the quick MLP experiments, then write the report"  # its line in `wninit --help`
# Which specs it runs at each profile is each spec's `reproduce` list (wninit.suite.experiments): at quick, the
# MLP experiments on the embedded real MNIST and Table 2's Hessian at init, which measures without training (the
# CNN, WRN and Table 1 experiments need CIFAR and hours: `wninit sweep experiments/<name>.toml --profile paper`);
# at medium, every spec whose quick verdict could not decide its claim, each sized to <= 2 hours on a 2-core CPU
# (docs/claims.md).
PROFILES = ("quick", "medium")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", metavar="DIR", default="wninit-out", help="output folder (default: ./wninit-out)")
    p.add_argument("--store", metavar="FILE.db", help="results store (default: DIR/store.db)")
    p.add_argument("--workers", type=int, default=2, metavar="N", help="parallel runs (default 2)")
    p.add_argument("--profile", choices=PROFILES, default="quick",
                   help="quick (about 10 minutes in all) or medium (up to 2 hours per spec, the specs the quick "
                        "profile cannot decide)")
    p.add_argument("--specs", nargs="+", metavar="NAME",
                   help="experiment specs to run at the profile (default: those whose spec lists the profile under "
                        "reproduce, see experiments/README.md)")
    p.add_argument("--experiments", metavar="DIR", help="folder of the experiment specs (default: ./experiments, "
                   "or the one beside the installed package)")
    p.add_argument("--limit", type=int, metavar="N", help="train at most N runs in this call (rerun to continue)")
    p.add_argument("--no-batch-runs", action="store_true",
                   help="train each MLP run alone instead of stacking compatible runs into one batched model")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--portable", action="store_true",
                   help="pin every CPU kernel to one instruction set, so the results are the same on any x86 machine "
                   "(slower; docs/reproducibility.md)")


def _figure1(out: Path, say, workers: int) -> list:
    """Figure 1 rows over the network draws claims 1-3 are judged on, computed once: a rerun reads `figure1.csv`
    back (and computes it again when it holds fewer draws, as one written before the draws did)."""
    from wninit.diagnostics.synthetic import rows_to_csv
    from wninit.suite.cli.figure1 import CLAIM_DRAWS, CLAIM_SAMPLES, draw_rows
    from wninit.suite.report.render import FIGURE1_CSV, FIGURE1_PNG, read_figure1_csv

    rows = read_figure1_csv(out / FIGURE1_CSV)
    if rows is None or len({r.draw for r in rows}) < CLAIM_DRAWS:
        started = time.perf_counter()
        say(f"Figure 1: norm propagation on synthetic data, {CLAIM_DRAWS} network draws (docs/method.md §7.1) ...")
        # float64 matrix work: one thread per process, the draws side by side in `workers` processes
        rows = draw_rows(0, CLAIM_SAMPLES, CLAIM_DRAWS, workers)
        rows_to_csv(rows, out / FIGURE1_CSV)
        (out / FIGURE1_PNG).unlink(missing_ok=True)
        say(f"Figure 1: done in {time.perf_counter() - started:.0f} s")
    if not (out / FIGURE1_PNG).exists():
        from wninit.diagnostics.plot import plot_figure1
        plot_figure1(rows, out / FIGURE1_PNG)
    return rows


def run(args) -> int:
    from wninit.suite.report.render import prepare_out, claims_text, render_report
    from wninit.suite.sweep.driver import run_sweep
    from wninit.suite.sweep.progress import format_duration
    from wninit.suite.sweep.spec import load_spec
    from wninit.suite.sweep.store import Store

    from wninit.suite.cli._portable import pinned, refuse_mixed
    from wninit.suite.train import portable

    if args.portable and not portable.active():
        return portable.rerun_pinned(args._argv)  # the pin must be in place before torch loads
    started = time.perf_counter()
    for name in ("workers", "limit"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UserError(f"--{name} must be at least 1, got {value}")

    def say(text):
        print(text, file=sys.stderr, flush=True)

    folder = find_experiments(args.experiments)
    exps = []
    for name in args.specs or reproduced_at(args.profile):
        path = folder / (name if name.endswith(".toml") else f"{name}.toml")
        if not path.is_file():
            raise UserError(f"no experiment spec {path}; choose among {', '.join(p.stem for p in sorted(folder.glob('*.toml')))}")
        exps.append(load_spec(path, args.profile))
    exps = pinned(exps, args.portable)
    out = prepare_out(args.out)
    store_path = Path(args.store) if args.store else out / "store.db"

    rows = _figure1(out, say, args.workers)
    with Store(store_path) as store:
        refuse_mixed(store, store_path, exps, "--out (or --store)")
        for exp in exps:
            new = store.add(exp.name, exp.profile, exp.runs, prune=True)
            say(f"{exp.name} ({exp.profile}): {len(exp.runs)} runs, {len(exp.runs) - new} already in {store_path}")
        summary = run_sweep(store, [(e.name, e.profile) for e in exps], workers=args.workers,
                            batch_runs=not args.no_batch_runs, limit=args.limit, progress=not args.no_progress)
    c = summary.counts
    say(f"runs: {c['completed']} completed, {c['diverged']} diverged, {c['failed']} failed, {c['pending']} pending "
        f"(this call trained {summary.executed} in {format_duration(summary.wall_s)})")
    if summary.stopped:
        say("stopped: finished runs are kept; rerun the same command to continue")
        return 130 if summary.stopped == "SIGINT" else 143

    report = render_report(store_path, out, figure1_rows=rows)
    print(claims_text(report.claims))
    print(report.machines)
    left = c["pending"] + c["running"]
    print(f"\nreport: {report.path}  ({len(report.figures) + 1} figures; {format_duration(time.perf_counter() - started)} "
          f"in all{'; ' + str(left) + ' runs not run yet: rerun to continue' if left else ''})")
    return 0
