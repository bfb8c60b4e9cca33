"""The sweep driver: claim runs, hand them to a pool, renew the leases, write each result as it comes.

The driver is the store's single writer in its process; several drivers may share a store
through leases (`wninit.suite.sweep.leases`). SIGINT and SIGTERM only set a flag: the loop then kills its
workers and puts its running runs back to pending in one transaction, so nothing is half-written and
the same command continues where it stopped. `kill -9` leaves the claims behind; a rerun on this host
sees their holder is dead and takes them at once (another host: after the lease).
"""
from __future__ import annotations

import signal
import threading
import time
from dataclasses import dataclass, field

from wninit.errors import UserError
from wninit.suite.sweep import leases
from wninit.suite.sweep.progress import SweepProgress
from wninit.suite.sweep.runners import Lost, make_pool
from wninit.suite.sweep.store import STATUSES, Store

__all__ = ["run_sweep", "SweepSummary", "BATCH_CLAIM"]

BATCH_CLAIM = 32  # runs claimed at once with --batch-runs, so that groups can form
BATCH_MAX = 16  # members per stacked model at most (ensemble.batchable_groups also splits over the workers)
POLL_S = 0.25  # how often the loop looks at the stop flag


@dataclass
class SweepSummary:
    counts: dict  # status -> runs, over the sweep's experiments, at the end
    executed: int = 0  # runs this session finished (written)
    lost: int = 0  # runs whose worker died and went back to pending (or failed)
    wall_s: float = 0.0
    stopped: str | None = None  # "SIGINT"/"SIGTERM" when stopped by a signal
    held_elsewhere: int = 0  # runs another live process is running now
    errors: dict = field(default_factory=dict)  # run id -> first line of its error, this session


class _Stop:
    """SIGINT/SIGTERM -> a flag the loop reads (never an exception in the middle of a store write)."""

    def __init__(self):
        self.signal: str | None = None
        self._old = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        self.signal = signal.Signals(signum).name

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)


def _batch_groups(cfgs, batch_runs: bool, workers: int = 1):
    """The units of work for the pool: one run each, or (`--batch-runs`) stacked groups split evenly over
    the `workers` and ordered costliest first (members x depth), so that the last to start is short."""
    if not batch_runs:
        return [[c] for c in cfgs]
    try:
        from wninit.suite.sweep.ensemble import batchable_groups
    except ImportError:
        raise UserError("--batch-runs needs wninit.suite.sweep.ensemble, which this installation lacks; "
                        "run without --batch-runs") from None
    groups = batchable_groups(cfgs, max_members=BATCH_MAX, workers=workers)
    return sorted(groups, key=lambda g: -len(g) * (g[0].depth + 1))


def run_sweep(store: Store, targets: list[tuple[str, str]], *, backend: str = "local", workers: int | None = None,
              address: str | None = None, device: str | None = None, channels_last: bool = False,
              compile: bool = False, cpus_per_run: float = 1.0, gpus_per_run: float = 0.0,
              batch_runs: bool = False, limit: int | None = None, slurm: dict | None = None,
              lease_s: float = leases.LEASE_S, progress: bool = True, stream=None) -> SweepSummary:
    """Run every unfinished run of `targets` ((experiment, profile) pairs already added to `store`).

    `device`, `channels_last` and `compile` are execution fields set on every run (not in the run
    id; train/accel.py). `limit` caps the runs claimed by this call. Returns a `SweepSummary`; a signal stops the
    loop cleanly and is reported in `stopped`. `slurm` holds the SLURM pool's arguments (folder, executor,
    partition, time_min, array_parallelism, options) for `backend="slurm"`.
    """
    if batch_runs:
        _batch_groups([], True)  # fail before starting a pool when the ensemble module is missing
    started = time.perf_counter()
    owner = leases.owner_id()
    at_start = _counts(store, targets)
    total = sum(at_start.values())
    bar = SweepProgress(total, total - at_start["pending"] - at_start["running"], enabled=progress, stream=stream,
                        label=", ".join(e for e, _ in targets))
    summary = SweepSummary(counts={})
    inflight: dict[object, list] = {}
    renew_every, last_renew, claimed = lease_s / 6, time.monotonic(), 0
    pool = None
    with _Stop() as stop:
        try:
            execution = {k: v for k, v in (("device", device), ("channels_last", channels_last),
                                            ("compile", compile)) if v}
            pool = make_pool(backend, workers=workers, execution=execution, address=address,
                             cpus_per_run=cpus_per_run, gpus_per_run=gpus_per_run, slurm=slurm)
            while stop.signal is None:
                while len(inflight) < pool.capacity and (limit is None or claimed < limit) and stop.signal is None:
                    want = BATCH_CLAIM if batch_runs else 1
                    cfgs = _claim(store, owner, targets, want if limit is None else min(want, limit - claimed), lease_s)
                    if not cfgs:
                        break
                    claimed += len(cfgs)
                    # groups split over the runs that train at once (SLURM: the array's parallelism, not its queue)
                    for group in _batch_groups(cfgs, batch_runs, getattr(pool, "parallelism", pool.capacity)):
                        inflight[pool.submit(group)] = group
                if not inflight:
                    break
                for handle, outcomes in pool.wait(timeout=min(POLL_S, renew_every)):
                    _record(store, owner, inflight.pop(handle), outcomes, bar, summary)
                if time.monotonic() - last_renew >= renew_every:
                    leases.renew(store, owner, [c.run_id for g in inflight.values() for c in g], lease_s=lease_s)
                    last_renew = time.monotonic()
        finally:
            interrupted = stop.signal is not None or inflight
            if pool is not None:
                pool.stop() if interrupted else pool.close()
            if interrupted:  # a signal or an exception: nothing of ours stays "running"
                leases.release(store, owner)
            bar.close()
    summary.stopped = stop.signal
    summary.wall_s = time.perf_counter() - started
    summary.counts = _counts(store, targets)
    summary.held_elsewhere = summary.counts["running"]
    return summary


def _claim(store, owner, targets, n, lease_s):
    for experiment, profile in targets:
        cfgs = leases.claim(store, owner, n, lease_s=lease_s, experiment=experiment, profile=profile)
        if cfgs:
            return cfgs
    return []


def _record(store: Store, owner: str, group, outcomes, bar: SweepProgress, summary: SweepSummary) -> None:
    """Write one finished group: each run's result, its failure, or its loss (one transaction each)."""
    if isinstance(outcomes, Lost):
        for cfg in group:
            status = leases.lost(store, owner, cfg.run_id, f"worker lost: {outcomes.reason}")
            summary.lost += 1
            if status == "failed":
                bar.update(cfg.run_id, "failed", outcomes.reason)
                summary.errors[cfg.run_id] = outcomes.reason
        return
    for cfg, out in zip(group, outcomes):
        if out["status"] == "failed":
            leases.give_up(store, owner, cfg.run_id, out["error"], out.get("host"))
            first = out["error"].splitlines()[0]
            summary.errors[cfg.run_id] = first
            bar.update(cfg.run_id, "failed", first)
        else:
            leases.finish(store, out)
            bar.update(cfg.run_id, out["status"])
        summary.executed += 1


def _counts(store: Store, targets) -> dict:
    ids = {}
    for e, p in targets:
        for r in store.runs(e, p):
            ids[r.id] = r.status
    out = dict.fromkeys(STATUSES, 0)
    for status in ids.values():
        out[status] += 1
    return out
