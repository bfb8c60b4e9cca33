"""Sweeps: the paper's experiments as TOML specs (`.spec`), a resumable SQLite store (`.store`,
run leases in `.leases`), and the runners that execute them (`.runners`, `.driver`)."""
from wninit.suite.sweep.leases import owner_id
from wninit.suite.sweep.driver import SweepSummary, run_sweep
from wninit.suite.sweep.spec import Experiment, load_spec
from wninit.suite.sweep.store import FINISHED, STATUSES, RunRecord, Store

__all__ = ["Experiment", "load_spec", "Store", "RunRecord", "STATUSES", "FINISHED", "run_sweep", "SweepSummary",
           "owner_id"]
