"""`wninit sweep SPEC... --profile P --store FILE.db`: run the paper's experiments, resumably (docs/method.md §6.3).

Expands each spec to runs, adds them to the store (run id = config hash: a run already stored is not
added again), runs what is not finished on a local process pool, Ray or SLURM (job arrays through
submitit), and prints a summary. Ctrl-C
stops cleanly; the same command continues. `--dry-run` only counts and shows what varies.
"""
from __future__ import annotations

import argparse
import sys

from wninit.errors import UserError

__all__ = ["add_arguments", "run"]

HELP = "run an experiment spec (a paper figure/table) into a results store"  # its line in `wninit --help`


def add_arguments(p: argparse.ArgumentParser) -> None:
    from wninit.suite.train.config import DEVICES

    p.add_argument("spec", nargs="+", metavar="SPEC",
                   help="experiment spec file(s), or the name of a spec installed with the package (experiments/README.md)")
    p.add_argument("--profile", default="quick", help="profile of the spec: quick (CPU, minutes) or paper (default quick)")
    p.add_argument("--store", metavar="FILE.db", help="results store (SQLite); created if missing")
    p.add_argument("--workers", type=int, metavar="N", help="parallel runs (default min(2, CPUs); Ray: cluster slots)")
    p.add_argument("--backend", choices=("local", "ray", "slurm"), default="local",
                   help="local process pool (default), Ray, or SLURM job arrays through submitit")
    p.add_argument("--address", metavar="ADDR", help="Ray cluster address (default: start a local Ray instance)")
    p.add_argument("--device", choices=DEVICES,
                   help="device for every run (not part of the run id); default: the spec's")
    p.add_argument("--channels-last", action="store_true", help="NHWC conv layout for every run (GPU; not in the run id)")
    p.add_argument("--compile", action="store_true", help="train every run through torch.compile (long runs; not in the run id)")
    p.add_argument("--portable", action="store_true",
                   help="pin every CPU kernel to one instruction set, so the results are the same on any x86 machine "
                   "(slower; another run id than the native run; docs/reproducibility.md)")
    p.add_argument("--cpus-per-run", type=float, default=1.0, metavar="F", help="Ray: CPUs per run; SLURM: CPUs per task, its torch threads (default 1)")
    p.add_argument("--gpus-per-run", type=float, default=0.0, metavar="F",
                   help="Ray: GPUs per run, fractional packs small runs (e.g. 0.25); SLURM: whole GPUs per task")
    _add_slurm_arguments(p)
    p.add_argument("--batch-runs", action="store_true", help="train compatible small MLP runs together as one batched model")
    p.add_argument("--limit", type=int, metavar="N", help="run at most N runs in this call")
    p.add_argument("--retry-failed", action="store_true", help="run the failed runs of these specs again")
    p.add_argument("--dry-run", action="store_true", help="list the runs (count, what varies) without training")
    p.add_argument("--no-progress", action="store_true", help="no progress bar or per-run lines")


def _add_slurm_arguments(p) -> None:
    g = p.add_argument_group("SLURM (--backend slurm; the driver stays on the login node and writes the store)")
    g.add_argument("--partition", metavar="P", help="SLURM partition of the job arrays (default: the cluster's)")
    g.add_argument("--time", type=int, metavar="MIN",
                   help="time limit of each task in minutes (default 60); a task past it is requeued from its checkpoint")
    g.add_argument("--array-parallelism", type=int, metavar="K", help="array tasks running at once (default 16)")
    g.add_argument("--slurm-logs", metavar="DIR",
                   help="submitit's folder of scripts, logs and checkpoints, on a shared file system (default STORE.slurm)")
    g.add_argument("--slurm-option", action="append", default=[], metavar="KEY=VALUE",
                   help="a further sbatch option by submitit's name, e.g. qos=high, account=lab, constraint=a100 (repeatable)")
    g.add_argument("--slurm-executor", choices=("slurm", "local"), default="slurm",
                   help="local: run the arrays on this machine through submitit's local executor (a test of the SLURM path)")


def _slurm(args) -> dict | None:
    """The SLURM pool's arguments, or None when none was given and the backend is not slurm."""
    given = (args.partition, args.time, args.array_parallelism, args.slurm_logs, args.slurm_option or None,
             args.slurm_executor if args.slurm_executor != "slurm" else None)
    if args.backend != "slurm" and all(v is None for v in given):
        return None
    options = {}
    for item in args.slurm_option:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--slurm-option takes KEY=VALUE (e.g. qos=high), got {item!r}")
        options[key.strip()] = value
    return {"folder": args.slurm_logs or f"{args.store}.slurm", "executor": args.slurm_executor,
            "partition": args.partition, "time_min": args.time, "array_parallelism": args.array_parallelism,
            "options": options}


def _values(values: list) -> str:
    text = ", ".join(str(v) for v in values[:12])
    return text + (f", ... ({len(values)} values)" if len(values) > 12 else "")


def _describe(exp, out) -> None:
    title = f" - {exp.title}" if exp.title else ""
    print(f"{exp.name} (profile {exp.profile}): {len(exp.runs)} runs{title}", file=out)
    varies = exp.varies
    width = max((len(k) for k in varies), default=0)
    for name, values in varies.items():
        print(f"  {name:<{width}}  {len(values):>3}  {_values(values)}", file=out)
    if len(exp.series) > 1:
        print("  series: " + ", ".join(f"{k} ({n})" for k, n in exp.series.items()), file=out)


def _dry_run(exps, store_path, out) -> int:
    distinct = {i for e in exps for i in e.ids}
    finished = _finished(store_path, distinct)  # a bad --store is its one sentence, before any of the plan
    for exp in exps:
        _describe(exp, out)
    total = sum(len(e.runs) for e in exps)
    print(f"total: {total} runs ({len(distinct)} distinct) in {len(exps)} spec(s); nothing was trained", file=out)
    if finished is not None:
        print(finished, file=out)
    return 0


def _finished(store_path, ids) -> str | None:
    """How many of `ids` the store at `store_path` has finished, as a line of the dry run (None without one)."""
    if store_path is None:
        return None
    from wninit.suite.sweep.store import FINISHED, Store, not_a_store_yet

    if not_a_store_yet(store_path):  # a dry run creates no store
        return f"none of them is finished: {store_path} holds no store yet"
    with Store(store_path, create=False) as store:
        done = sum(1 for r in store.runs(ids=ids) if r.status in FINISHED)
    return f"{done} of them are already finished in {store_path}"


def _spec_path(arg: str) -> str:
    """A spec file, or the name of one of the paper's specs installed with the package (the registry's)."""
    from pathlib import Path

    if Path(arg).exists() or "/" in arg or "\\" in arg:
        return arg
    from wninit.suite.experiments import find_experiments

    try:
        folder = find_experiments()
    except UserError:
        return arg
    name = arg if arg.endswith(".toml") else f"{arg}.toml"
    return str(folder / name) if (folder / name).is_file() else arg


def run(args) -> int:
    from wninit.suite.sweep.driver import run_sweep
    from wninit.suite.sweep.spec import load_spec
    from wninit.suite.sweep.progress import format_duration
    from wninit.suite.sweep.store import Store
    from wninit.suite.cli._portable import needs_pin, pinned, refuse_mixed
    from wninit.suite.train import portable

    out = sys.stdout
    for name in ("workers", "limit"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UserError(f"--{name} must be at least 1, got {value}")
    if args.device and args.backend == "local":
        from wninit.suite.train.runtime import resolve_device

        resolve_device(args.device)  # a device this machine lacks: one sentence now, not N failed runs
    exps = pinned([load_spec(_spec_path(path), args.profile) for path in args.spec], args.portable)
    pin = needs_pin(exps)
    if args.dry_run:
        return _dry_run(exps, args.store, out)
    if args.store is None:
        raise UserError("pass --store FILE.db: the SQLite file the results go to (created if missing)")
    if pin and not portable.active():
        return portable.rerun_pinned(args._argv)  # the pin must be in place before torch loads; workers inherit it
    if not pin and portable.active() and args.backend == "local":
        raise UserError(f"this process's kernels are pinned ({', '.join(portable.ENV)} are set) but the runs are not "
                        "portable: pass --portable, or run the sweep without that environment")
    with Store(args.store) as store:
        refuse_mixed(store, args.store, exps, "--store")
        for exp in exps:
            new = store.add(exp.name, exp.profile, exp.runs, prune=True)
            print(f"{exp.name} (profile {exp.profile}): {len(exp.runs)} runs, {new} new, "
                  f"{len(exp.runs) - new} already in {args.store}", file=out)
            if args.retry_failed:
                again = store.retry_failed(exp.name, exp.profile)
                if again:
                    print(f"  {again} failed runs will run again", file=out)
        targets = [(e.name, e.profile) for e in exps]
        summary = run_sweep(store, targets, backend=args.backend, workers=args.workers, address=args.address,
                            device=args.device, channels_last=args.channels_last, compile=args.compile,
                            cpus_per_run=args.cpus_per_run, gpus_per_run=args.gpus_per_run,
                            batch_runs=args.batch_runs, limit=args.limit, slurm=_slurm(args),
                            progress=not args.no_progress)
    c = summary.counts
    rate = f", {3600 * summary.executed / summary.wall_s:.0f} runs/hour" if summary.executed and summary.wall_s else ""
    print(f"summary: {sum(c.values())} runs: {c['completed']} completed, {c['diverged']} diverged, {c['failed']} failed, "
          f"{c['pending']} pending, {c['running']} running elsewhere; this call ran {summary.executed} in "
          f"{format_duration(summary.wall_s)}{rate}", file=out)
    for run_id, error in list(summary.errors.items())[:5]:
        print(f"  failed {run_id}: {error}", file=out)
    if len(summary.errors) > 5:
        print(f"  ... and {len(summary.errors) - 5} more failures (see `wninit export {args.store}`)", file=out)
    if summary.stopped:
        print(f"stopped by {summary.stopped}: unfinished runs are back to pending; rerun the same command to continue",
              file=out)
        return 130 if summary.stopped == "SIGINT" else 143
    if c["failed"] and not args.retry_failed:
        print("failed runs stay failed on a rerun; add --retry-failed to run them again", file=out)
    return 1 if summary.errors else 0
