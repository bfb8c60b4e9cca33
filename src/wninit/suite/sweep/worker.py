"""What a worker does: train the runs it is handed and return plain dicts (local pool and Ray alike).

Workers never touch the store: the driver is its single writer (docs/layout.md). An
exception inside a run becomes an outcome with status `failed` and the error text, so one bad run
never takes the worker, or the sweep, down. A worker whose driver disappears (`kill -9`) exits
within a second instead of training on for nobody.
"""
from __future__ import annotations

import os
import signal
import socket
import threading
import time
import traceback
import warnings

from wninit.errors import UserError

__all__ = ["init_worker", "run_one", "run_group", "outcome_of"]

WATCHDOG_S = 0.5


def init_worker(threads: int | None, parent_pid: int) -> None:
    """Process-pool initializer: torch threads, SIGINT left to the driver, exit when the driver is gone."""
    import torch

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; the driver stops us
    if threads:
        torch.set_num_threads(threads)
    threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True, name="wninit-watchdog").start()


def _watch_parent(parent_pid: int) -> None:
    while True:
        time.sleep(WATCHDOG_S)
        if os.getppid() != parent_pid:
            os._exit(1)


def outcome_of(result) -> dict:
    """A [`RunResult`][wninit.suite.train.result.RunResult] as the dict the driver writes (see `wninit.suite.sweep.leases.finish`)."""
    from wninit.suite.sweep.store import METRIC_KEYS

    d = result.to_dict()
    return {"run_id": result.run_id, "status": result.status, "metrics": {k: d.get(k) for k in METRIC_KEYS},
            "epochs": d["epochs"], "wall_s": result.wall_s, "env": d["env"], "host": socket.gethostname()}


def _failed(cfg_dict: dict, exc: BaseException) -> dict:
    from wninit.suite.train.config import RunConfig

    try:
        run_id = RunConfig.from_dict(dict(cfg_dict)).run_id
    except Exception:
        run_id = None
    head = f"{type(exc).__name__}: {str(exc).strip() or '(no message)'}"
    return {"run_id": run_id, "status": "failed", "error": head + "\n" + traceback.format_exc(limit=-8),
            "host": socket.gethostname()}


def _config(cfg_dict: dict, execution: dict | None):
    """The run, with the sweep's execution fields (device, channels_last, compile) applied."""
    from wninit.suite.train.config import RunConfig

    cfg = RunConfig.from_dict(dict(cfg_dict))
    return cfg.replace(**execution) if execution else cfg


def run_one(cfg_dict: dict, execution: dict | None = None, threads: int | None = None, out_dir=None) -> dict:
    """Train one run (`fit`) and return its outcome; never raises for a run's own error. With `out_dir`
    the run keeps an epoch checkpoint there and resumes from it (a requeued SLURM task)."""
    try:
        from wninit.suite.train.single_run import fit
        import torch

        if threads:
            torch.set_num_threads(threads)
        return outcome_of(fit(_config(cfg_dict, execution), out_dir=out_dir))
    except Exception as exc:  # the run failed, not the worker: report it and stay alive
        return _failed(cfg_dict, exc)


def run_group(cfg_dicts: list[dict], execution: dict | None = None, threads: int | None = None) -> list[dict]:
    """Train a group: one batched ensemble when it has several members (`--batch-runs`), else `fit`.

    A `UserError` of the group (one member's bad input, e.g. its data missing) reruns each member on
    its own, so that config fails only itself; a warning (on the worker's stderr, which is the sweep's) names
    the error. Any other exception is a bug of the stacked engine: every member fails with its traceback.
    """
    if len(cfg_dicts) == 1:
        return [run_one(cfg_dicts[0], execution, threads)]
    try:
        import torch
        from wninit.suite.sweep.ensemble import fit_ensemble

        if threads:
            torch.set_num_threads(threads)
        return [outcome_of(r) for r in fit_ensemble([_config(c, execution) for c in cfg_dicts])]
    except UserError as exc:
        warnings.warn(f"a stacked group of {len(cfg_dicts)} runs failed ({type(exc).__name__}: "
                      f"{str(exc).strip().splitlines()[0] if str(exc).strip() else 'no message'}), so each of its "
                      "runs trains alone", RuntimeWarning, stacklevel=2)
        return [run_one(c, execution, threads) for c in cfg_dicts]
    except Exception as exc:  # the stacked engine's own error: reported on every member, not retried alone
        return [_failed(c, exc) for c in cfg_dicts]
