"""Upgrades of a results store written by an older wninit, each one transaction run when the store is opened.

Schema 1 -> 2: the run ids gained a schema version (`wninit.suite.train.run_ids`). Every stored run whose id is
its config's schema-1 id is renamed to its current id, in `runs`, `memberships` and `epochs`, and the old
id is kept in `aliases(old, new)` so that a command given an old id or prefix still finds the run. A row whose
id is not its config's schema-1 id was stale already (its config changed meaning before schema 1 was frozen):
it keeps its id, and the migration says so once. The runs also gain `code_commit` and `code_dirty` (the git
commit of the code that made a result and whether it had uncommitted changes), None for the runs stored before.

Schema 2 -> 3: the runs gain `cpu`, `isa` and `gpu`, the machine that made each result (docs/reproducibility.md),
None for the runs stored before.
"""
from __future__ import annotations

import sqlite3
import warnings

from wninit.errors import UserError

__all__ = ["ALIASES_TABLE", "upgrade"]

ALIASES_TABLE = "CREATE TABLE aliases(old TEXT PRIMARY KEY, new TEXT NOT NULL)"


def upgrade(conn: sqlite3.Connection, where: str, current: int) -> None:
    """Bring the store at `conn` to schema `current`, inside the caller's `BEGIN IMMEDIATE`; the version
    is read under that lock, so two processes opening one old store migrate it once."""
    version = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0]
    if version == "1":
        _ids_v1_to_v2(conn, where)
        version = "2"
    if version == "2" and current >= 3:
        for column in ("cpu TEXT", "isa TEXT", "gpu TEXT"):  # the machine of each result (None: not recorded)
            conn.execute(f"ALTER TABLE runs ADD COLUMN {column}")
        version = "3"
    conn.execute("UPDATE meta SET value=? WHERE key='schema_version'", (version,))


def _ids_v1_to_v2(conn: sqlite3.Connection, where: str) -> None:
    from wninit.suite.train.config import RunConfig
    from wninit.suite.train.run_ids import legacy_run_id

    conn.execute(ALIASES_TABLE)
    for column in ("code_commit TEXT", "code_dirty INTEGER"):  # which code made each result (None: not recorded)
        conn.execute(f"ALTER TABLE runs ADD COLUMN {column}")
    stale = 0
    for old, config in conn.execute("SELECT id, config FROM runs ORDER BY rowid").fetchall():
        try:
            cfg = RunConfig.from_json(config)
        except UserError:  # a field this wninit no longer knows: it cannot be the config's id either
            cfg = None
        if cfg is None or legacy_run_id(cfg) != old:
            stale += 1
            continue
        new = cfg.run_id
        for table, column in (("runs", "id"), ("memberships", "run_id"), ("epochs", "run_id")):
            conn.execute(f"UPDATE {table} SET {column}=? WHERE {column}=?", (new, old))
        conn.execute("INSERT INTO aliases(old, new) VALUES (?, ?)", (old, new))
    if stale:
        warnings.warn(f"{stale} runs in {where} have an id that is not their config's (stored before their "
                      "config changed meaning), so they keep that id and a sweep asking for their configs trains "
                      "them again under the current ids", stacklevel=2)
