"""The results store: one SQLite file (stdlib, WAL) with every run's config, status, metrics and epochs.

Tables (results are data: every run's config, status, metrics and epochs, queryable):

- `meta(key, value)`: `application` = wninit, `schema_version`, `created_by` (wninit version).
- `runs`: one row per run id (the config hash), stored once however many experiments share it.
- `aliases(old, new)`: the ids the runs had in a store of schema 1 (`.store_migrations`).
- `memberships(experiment, profile, run_id)`: which experiment/profile asks for which run, as its spec was when
  last swept.
- `epochs(run_id, epoch, ...)`: the reference's per-epoch CSV columns (docs/method.md §6.1 "Logging").

Every write is one transaction, so a process killed at any point leaves the previous state readable. A store
of an older schema is upgraded when opened (`.store_migrations`).
Claims (which process runs what) live in `wninit.suite.sweep.leases`.
"""
from __future__ import annotations

import contextlib
import json
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from wninit.errors import UserError
from wninit.suite.train.config import RunConfig
from wninit.suite.train.result import CSV_COLUMNS, FINISHED, STATUSES
from wninit.suite.sweep.store_migrations import ALIASES_TABLE, upgrade

__all__ = ["Store", "RunRecord", "STATUSES", "FINISHED", "METRIC_KEYS", "SCHEMA_VERSION", "utc_now", "not_a_store_yet"]

# 2: run ids with a schema version (wninit.suite.train.run_ids), aliases of the old ones, code commit;
# 3: the machine of each result (cpu, isa, gpu)
SCHEMA_VERSION = 3
APPLICATION_ID = 0x574E4954  # "WNIT" in the SQLite header: `file` and other tools can tell our stores apart
METRIC_KEYS = ("test_acc", "best_val_acc", "best_epoch", "train_acc", "diverged_at", "epochs_done", "log_hessian_norm",
               "returns")
EPOCH_KEYS = CSV_COLUMNS  # an epoch row of the store is a row of the run's epochs.csv

_SCHEMA = f"""
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE runs(
    id TEXT PRIMARY KEY,
    config TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ({", ".join(repr(s) for s in STATUSES)})),
    metrics TEXT, error TEXT, wall_s REAL,
    wninit_version TEXT, torch_version TEXT, device TEXT, threads INTEGER, host TEXT, seed INTEGER,
    code_commit TEXT, code_dirty INTEGER, cpu TEXT, isa TEXT, gpu TEXT,
    created_at TEXT NOT NULL, started_at TEXT, finished_at TEXT,
    claimed_by TEXT, lease_until REAL,
    attempts INTEGER NOT NULL DEFAULT 0);
CREATE INDEX runs_status ON runs(status);
CREATE TABLE memberships(
    experiment TEXT NOT NULL, profile TEXT NOT NULL, run_id TEXT NOT NULL REFERENCES runs(id),
    PRIMARY KEY (experiment, profile, run_id));
CREATE INDEX memberships_run ON memberships(run_id);
CREATE TABLE epochs(
    run_id TEXT NOT NULL REFERENCES runs(id), epoch INTEGER NOT NULL,
    train_loss REAL, val_loss REAL, train_acc REAL, val_acc REAL, lr REAL,
    PRIMARY KEY (run_id, epoch));
{ALIASES_TABLE};
"""


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


@dataclass
class RunRecord:
    """One stored run. `metrics` has `METRIC_KEYS` once the run is finished, else is empty."""
    id: str
    config: RunConfig
    status: str
    metrics: dict
    error: str | None
    wall_s: float | None
    experiments: list[str] = field(default_factory=list)
    attempts: int = 0
    host: str | None = None
    device: str | None = None
    threads: int | None = None
    wninit_version: str | None = None
    torch_version: str | None = None
    code_commit: str | None = None  # the git commit of the code that made the result, None outside a checkout
    code_dirty: bool | None = None  # whether src/wninit had uncommitted changes then
    seed: int | None = None
    cpu: str | None = None  # the machine that made the result: CPU model, the ISA its kernels used, the GPU
    isa: str | None = None
    gpu: str | None = None
    created_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None


class Store:
    """A sweep's SQLite file; created on first use. A store of an older schema version is upgraded in place on
    open (`.store_migrations`); a file that is not a wninit store, or one of a newer schema version, is a
    `UserError`.

    Examples:
        >>> store = Store("results/fig2.db")
        >>> store.add("fig2_mlp_depth", "quick", load_spec("experiments/fig2_mlp_depth.toml", "quick").runs)
        >>> store.counts()
    """

    def __init__(self, path: str | Path, *, create: bool = True):
        self.path = Path(path)
        _guard(self.path, create)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # isolation_level=None: we issue BEGIN/COMMIT ourselves, one transaction per write
            self.conn = sqlite3.connect(str(self.path), timeout=30.0, isolation_level=None)
            self.conn.row_factory = sqlite3.Row
            if self.conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0] == 0:
                self._create()
            self._check()
            with contextlib.suppress(sqlite3.DatabaseError):  # a read-only store can still be read
                self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=FULL")
            self.conn.execute("PRAGMA foreign_keys=ON")
        except sqlite3.DatabaseError as exc:
            raise self._error(exc, "open") from None

    # -- lifecycle -------------------------------------------------------------------------------------
    def close(self) -> None:
        self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _create(self) -> None:
        from wninit import __version__

        with self.transaction() as conn:
            if conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0]:
                return  # another process created it between our look and our lock
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.executemany("INSERT INTO meta(key, value) VALUES (?, ?)",
                             [("application", "wninit"), ("schema_version", str(SCHEMA_VERSION)),
                              ("created_by", __version__), ("created_at", utc_now())])
            conn.execute(f"PRAGMA application_id={APPLICATION_ID}")

    def _check(self) -> None:
        where = str(self.path)
        try:
            rows = dict(self.conn.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.DatabaseError as exc:
            if "no such table" in str(exc):
                raise UserError(f"{where} is an SQLite file but not a wninit store (it has no meta table); "
                                "pass a new file name for --store") from None
            raise UserError(f"{where} is not a wninit store ({exc}); pass a new file name for --store") from None
        if rows.get("application") != "wninit":
            raise UserError(f"{where} is an SQLite file but not a wninit store; pass a new file name for --store")
        version = rows.get("schema_version")
        if version in tuple(str(v) for v in range(1, SCHEMA_VERSION)):  # an older store: upgraded once
            with self.transaction() as conn:
                upgrade(conn, where, SCHEMA_VERSION)
        elif version != str(SCHEMA_VERSION):
            raise UserError(f"{where} is a wninit store of schema_version {version} (made by wninit "
                            f"{rows.get('created_by', '?')}), but this wninit reads schema_version {SCHEMA_VERSION}; "
                            "open it with that wninit version or start a new store")

    def _error(self, exc: sqlite3.DatabaseError, doing: str) -> UserError:
        msg = str(exc)
        where = str(self.path)
        if "file is not a database" in msg or "file is encrypted" in msg:
            return UserError(f"{where} is not a wninit store (not an SQLite file); pass a new file name for --store")
        if "readonly" in msg or "read-only" in msg:
            return UserError(f"cannot {doing} store {where}: the file or its folder is read-only; "
                             "make it writable or use another --store")
        if "disk is full" in msg or "disk I/O" in msg:
            return UserError(f"cannot {doing} store {where}: {msg} (what was stored before is kept); "
                             "free some space and rerun")
        if "locked" in msg or "busy" in msg:
            return UserError(f"store {where} stayed locked by another process for 30 s while trying to {doing}; "
                             "rerun when it is less busy")
        return UserError(f"cannot {doing} store {where}: {msg}")

    @contextlib.contextmanager
    def transaction(self):
        """`BEGIN IMMEDIATE` ... `COMMIT`: one atomic write, taken before any read it depends on."""
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.DatabaseError as exc:
            raise self._error(exc, "write to") from None
        try:
            yield self.conn
            self.conn.execute("COMMIT")
        except BaseException as exc:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.DatabaseError):
                raise self._error(exc, "write to") from None
            raise

    # -- writes ------------------------------------------------------------------------------------------
    def add(self, experiment: str, profile: str, cfgs: list[RunConfig], *, prune: bool = False) -> int:
        """Record that `experiment`/`profile` asks for `cfgs`; returns how many runs were new.

        A run already stored (same id, from this or another experiment) is not re-added or reset. With `prune`
        (a sweep passes its spec's whole expansion), a run the experiment/profile asked for before and no longer
        does (its spec's grid shrank) leaves its membership, so the report judges the spec as it is now; the
        run itself stays, as other memberships may share it.
        """
        now = utc_now()
        with self.transaction() as conn:
            before = conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
            conn.executemany(
                "INSERT OR IGNORE INTO runs(id, config, status, seed, created_at) VALUES (?, ?, 'pending', ?, ?)",
                [(c.run_id, c.resolved().to_json(), c.seed, now) for c in cfgs])
            if prune:
                asked = {c.run_id for c in cfgs}
                had = {r for (r,) in conn.execute(
                    "SELECT run_id FROM memberships WHERE experiment = ? AND profile = ?", (experiment, profile))}
                conn.executemany("DELETE FROM memberships WHERE experiment = ? AND profile = ? AND run_id = ?",
                                 [(experiment, profile, r) for r in had - asked])
            conn.executemany("INSERT OR IGNORE INTO memberships(experiment, profile, run_id) VALUES (?, ?, ?)",
                             [(experiment, profile, c.run_id) for c in cfgs])
            after = conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
        return after - before

    def retry_failed(self, experiment: str | None = None, profile: str | None = None) -> int:
        """Put this experiment's failed runs back to pending (their error text is cleared)."""
        where, args = _scope(experiment, profile)
        with self.transaction() as conn:
            cur = conn.execute(f"UPDATE runs SET status='pending', error=NULL WHERE status='failed' AND {where}", args)
            return cur.rowcount

    def absorb(self, other: str | Path) -> dict[str, int]:
        """Copy into this store what the store at `other` finished and this one has not: the runs, their
        epochs and the experiments that asked for them (a sweep split over machines, gathered into one).

        A run finished in both must have the same metrics: otherwise nothing is copied and a UserError names
        the run. A run `other` has not finished (pending, running, failed) is added as pending where this store
        lacks it, so the memberships stay whole. Returns {"copied": runs whose results came over, "added":
        pending runs added, "same": finished runs both held with equal metrics}.
        """
        with Store(other, create=False) as src:
            theirs = src.conn.execute("SELECT * FROM runs").fetchall()
            memberships = src.conn.execute("SELECT experiment, profile, run_id FROM memberships").fetchall()
            aliases = src.conn.execute("SELECT old, new FROM aliases").fetchall()
            epochs = {r["id"]: src.conn.execute("SELECT * FROM epochs WHERE run_id=? ORDER BY epoch",
                                                (r["id"],)).fetchall()
                      for r in theirs if r["status"] in FINISHED}
        counts = {"copied": 0, "added": 0, "same": 0}
        with self.transaction() as conn:
            mine = {r["id"]: r for r in conn.execute("SELECT id, status, metrics FROM runs")}
            copy, add = [], []
            for r in theirs:
                have = mine.get(r["id"])
                if r["status"] not in FINISHED:
                    if have is None:
                        add.append(r)
                elif have is None or have["status"] not in FINISHED:
                    copy.append(r)
                elif json.loads(have["metrics"] or "{}") == json.loads(r["metrics"] or "{}"):
                    counts["same"] += 1
                else:
                    raise UserError(f"run {r['id']} is finished in both {self.path} and {other} with different "
                                    "metrics (another machine or code version made one of them); nothing was merged: "
                                    "`wninit rerun` it, or keep the stores apart")
            columns = [c[1] for c in conn.execute("PRAGMA table_info(runs)")]
            fresh = {"claimed_by": None, "lease_until": None}  # no process of this store holds them
            for r in copy:
                conn.execute("DELETE FROM epochs WHERE run_id=?", (r["id"],))
                conn.execute(f"INSERT OR REPLACE INTO runs({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                             [fresh[c] if c in fresh else r[c] for c in columns])
                rows = epochs[r["id"]]
                if rows:
                    keys = rows[0].keys()
                    conn.executemany(f"INSERT INTO epochs({', '.join(keys)}) VALUES ({', '.join('?' * len(keys))})",
                                     [tuple(e) for e in rows])
            conn.executemany("INSERT INTO runs(id, config, status, seed, created_at) VALUES (?, ?, 'pending', ?, ?)",
                             [(r["id"], r["config"], r["seed"], r["created_at"]) for r in add])
            conn.executemany("INSERT OR IGNORE INTO memberships(experiment, profile, run_id) VALUES (?, ?, ?)",
                             [tuple(m) for m in memberships])
            conn.executemany("INSERT OR IGNORE INTO aliases(old, new) VALUES (?, ?)", [tuple(a) for a in aliases])
        counts["copied"], counts["added"] = len(copy), len(add)
        return counts

    # -- reads --------------------------------------------------------------------------------------------
    def runs(self, experiment: str | None = None, profile: str | None = None, ids=None) -> list[RunRecord]:
        """The runs of `experiment`/`profile` (all when None), in the order they were added."""
        where, args = _scope(experiment, profile)
        if ids is not None:
            ids = list(ids)
            where += f" AND id IN ({','.join('?' * len(ids))})"
            args = args + ids
        rows = self.conn.execute(f"SELECT * FROM runs WHERE {where} ORDER BY rowid", args).fetchall()
        groups: dict[str, list[str]] = {}
        for run_id, name in self.conn.execute("SELECT run_id, experiment FROM memberships ORDER BY rowid"):
            if name not in groups.setdefault(run_id, []):
                groups[run_id].append(name)
        return [_record(r, groups.get(r["id"], [])) for r in rows]

    def run(self, run_id: str) -> RunRecord:
        """One run by id or unique id prefix, current or the id it had in a store of schema 1."""
        like = run_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        rows = self.conn.execute("SELECT id FROM runs WHERE id LIKE ? ESCAPE '\\' UNION "
                                 "SELECT new FROM aliases WHERE old LIKE ? ESCAPE '\\'", (like, like)).fetchall()
        if len(rows) != 1:
            what = "no run" if not rows else f"{len(rows)} runs"
            raise UserError(f"{what} in {self.path} match id {run_id!r}; pass a full id from `wninit export`")
        return self.runs(ids=[rows[0][0]])[0]

    def epochs(self, run_id: str) -> list[dict]:
        rows = self.conn.execute(f"SELECT {', '.join(EPOCH_KEYS)} FROM epochs WHERE run_id=? ORDER BY epoch",
                                 (run_id,)).fetchall()
        return [dict(r) for r in rows]

    def experiments(self) -> list[tuple[str, str]]:
        """(experiment, profile) pairs in the store, in the order first added."""
        rows = self.conn.execute("SELECT experiment, profile, MIN(rowid) AS first FROM memberships "
                                 "GROUP BY experiment, profile ORDER BY first").fetchall()
        return [(r["experiment"], r["profile"]) for r in rows]

    def counts(self, experiment: str | None = None, profile: str | None = None) -> dict[str, int]:
        """status -> number of runs (every status present, 0 included)."""
        where, args = _scope(experiment, profile)
        out = dict.fromkeys(STATUSES, 0)
        for status, n in self.conn.execute(f"SELECT status, COUNT(*) FROM runs WHERE {where} GROUP BY status", args):
            out[status] = n
        return out

    def meta(self) -> dict[str, str]:
        return dict(self.conn.execute("SELECT key, value FROM meta").fetchall())


def not_a_store_yet(path: str | Path) -> bool:
    """Whether `path` is missing or an empty file: SQLite would open either as an empty database, and only a
    writer may turn it into a store."""
    path = Path(path)
    return not path.exists() or (path.is_file() and path.stat().st_size == 0)


def _guard(path: Path, create: bool) -> None:
    """A directory is never a store, and a reader never turns a missing or empty file into one (SQLite treats
    both as an empty database): only a writer (`wninit sweep`, `wninit reproduce`) creates a store."""
    if path.is_dir():
        raise UserError(f"store {str(path)!r} is a directory; pass a file name such as results/sweep.db")
    if not create and not_a_store_yet(path):
        state = "does not exist" if not path.exists() else "is an empty file"
        raise UserError(f"{str(path)!r} {state}, not a wninit store; pass the .db file that "
                        "`wninit sweep --store` or `wninit reproduce` wrote")


def _scope(experiment: str | None, profile: str | None) -> tuple[str, list]:
    """SQL condition on `runs` for the runs of an experiment and/or profile."""
    if experiment is None and profile is None:
        return "1", []
    conds, args = [], []
    if experiment is not None:
        conds.append("experiment=?")
        args.append(experiment)
    if profile is not None:
        conds.append("profile=?")
        args.append(profile)
    return f"id IN (SELECT run_id FROM memberships WHERE {' AND '.join(conds)})", args


def _record(r: sqlite3.Row, experiments: list[str]) -> RunRecord:
    return RunRecord(id=r["id"], config=RunConfig.from_json(r["config"]), status=r["status"],
                     metrics=json.loads(r["metrics"]) if r["metrics"] else {}, error=r["error"], wall_s=r["wall_s"],
                     experiments=experiments, attempts=r["attempts"], host=r["host"], device=r["device"],
                     threads=r["threads"],
                     wninit_version=r["wninit_version"], torch_version=r["torch_version"], code_commit=r["code_commit"],
                     code_dirty=None if r["code_dirty"] is None else bool(r["code_dirty"]), seed=r["seed"],
                     cpu=r["cpu"], isa=r["isa"], gpu=r["gpu"], created_at=r["created_at"], started_at=r["started_at"], finished_at=r["finished_at"])

