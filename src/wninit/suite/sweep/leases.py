"""Who runs what: leases on the store's runs, each claimed by one holder and renewed while it trains.

A driver claims pending runs atomically (`BEGIN IMMEDIATE` ... `UPDATE`), renews the lease of every
run it holds while they train, and writes each result in one transaction. A run whose lease expired (its
holder stopped renewing: killed, frozen, its machine gone) can be claimed again; so two `wninit sweep`
processes on one store share the work and, while both live, never run one run twice. A holder on this
host that has died (its pid is gone, or now belongs to another process) is noticed at once instead of
after the lease, so a rerun after `kill -9` continues immediately.
"""
from __future__ import annotations

import json
import os
import socket
import time

from wninit.suite.train.config import RunConfig
from wninit.suite.sweep.store import FINISHED, METRIC_KEYS, Store, _scope, utc_now

__all__ = ["owner_id", "holder_alive", "claim", "renew", "finish", "release", "give_up", "lost",
           "LEASE_S", "MAX_ATTEMPTS"]

LEASE_S = 60.0  # a holder renews every LEASE_S / 6; another host takes over a dead holder's runs after this
MAX_ATTEMPTS = 3  # a run whose worker process died this many times is marked failed (out of memory?)


def _start_token(pid: int) -> str:
    """The process start time in clock ticks (Linux /proc), so a reused pid is not mistaken for the holder."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return "0"


def owner_id(pid: int | None = None) -> str:
    """`host:pid:start` of this process (or of `pid`): the name a claim is held under."""
    pid = os.getpid() if pid is None else pid
    return f"{socket.gethostname()}:{pid}:{_start_token(pid)}"


def holder_alive(owner: str) -> bool | None:
    """Whether the process named `owner` still runs; None when it is on another host (trust the lease)."""
    try:
        host, pid_text, token = owner.rsplit(":", 2)
        pid = int(pid_text)
    except ValueError:
        return None
    if host != socket.gethostname():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, another user's
        return True
    return token == "0" or _start_token(pid) in ("0", token)


def _expire_dead_holders(conn, owner: str, now: float) -> None:
    holders = [r[0] for r in conn.execute(
        "SELECT DISTINCT claimed_by FROM runs WHERE status='running' AND lease_until >= ? AND claimed_by != ?",
        (now, owner))]
    for holder in holders:
        if holder_alive(holder) is False:
            conn.execute("UPDATE runs SET lease_until=0 WHERE status='running' AND claimed_by=?", (holder,))


def claim(store: Store, owner: str, n: int = 1, *, lease_s: float = LEASE_S, experiment: str | None = None,
          profile: str | None = None) -> list[RunConfig]:
    """Atomically take up to `n` runs of `experiment`/`profile` that are pending or whose holder's
    lease expired; each gets status running, this owner, a lease and one more attempt."""
    where, args = _scope(experiment, profile)
    with store.transaction() as conn:
        now = time.time()
        _expire_dead_holders(conn, owner, now)
        rows = conn.execute(
            f"SELECT id, config FROM runs WHERE (status='pending' OR (status='running' AND lease_until < ?)) "
            f"AND {where} ORDER BY rowid LIMIT ?", [now] + args + [n]).fetchall()
        conn.executemany(
            "UPDATE runs SET status='running', claimed_by=?, lease_until=?, started_at=?, attempts=attempts+1, "
            "error=NULL WHERE id=?", [(owner, now + lease_s, utc_now(), r["id"]) for r in rows])
    return [RunConfig.from_json(r["config"]) for r in rows]


def renew(store: Store, owner: str, ids, *, lease_s: float = LEASE_S) -> set[str]:
    """Extend the lease of the runs in `ids` this owner still holds; returns those ids."""
    ids = list(ids)
    if not ids:
        return set()
    marks = ",".join("?" * len(ids))
    with store.transaction() as conn:
        conn.execute(f"UPDATE runs SET lease_until=? WHERE status='running' AND claimed_by=? AND id IN ({marks})",
                     [time.time() + lease_s, owner] + ids)
        held = conn.execute(f"SELECT id FROM runs WHERE status='running' AND claimed_by=? AND id IN ({marks})",
                            [owner] + ids).fetchall()
    return {r[0] for r in held}


def finish(store: Store, outcome: dict) -> bool:
    """Write one run's result (row + epochs) in one transaction; False if it was already finished.

    `outcome` is what a worker returns: run_id, status (completed|diverged), metrics, epochs, wall_s,
    env (wninit, torch, commit, dirty, device, seed, cpu, isa, gpu) and host. The first result written wins: a run that is already
    completed or diverged is never overwritten (results are deterministic, so nothing is lost).
    """
    if outcome["status"] not in FINISHED:
        raise ValueError(f"finish() takes a completed or diverged outcome, got {outcome['status']!r}")
    env, run_id = outcome.get("env", {}), outcome["run_id"]
    metrics = {k: outcome["metrics"].get(k) for k in METRIC_KEYS}
    with store.transaction() as conn:
        cur = conn.execute(
            "UPDATE runs SET status=?, metrics=?, error=NULL, wall_s=?, wninit_version=?, torch_version=?, code_commit=?, "
            "code_dirty=?, device=?, threads=?, cpu=?, isa=?, gpu=?, host=?, finished_at=?, claimed_by=NULL, lease_until=NULL "
            "WHERE id=? AND status IN ('pending', 'running')",
            (outcome["status"], json.dumps(metrics), outcome.get("wall_s"), env.get("wninit"), env.get("torch"),
             env.get("commit"), env.get("dirty"), env.get("device"), env.get("threads"), env.get("cpu"),
             env.get("isa"), env.get("gpu"), outcome.get("host"),
             utc_now(), run_id))
        if cur.rowcount == 0:
            return False
        conn.execute("DELETE FROM epochs WHERE run_id=?", (run_id,))
        conn.executemany(
            "INSERT INTO epochs(run_id, epoch, train_loss, val_loss, train_acc, val_acc, lr) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(run_id, r["epoch"], r.get("train_loss"), r.get("val_loss"), r.get("train_acc"), r.get("val_acc"),
              r.get("lr")) for r in outcome.get("epochs", [])])
    return True


def give_up(store: Store, owner: str, run_id: str, error: str, host: str | None = None) -> None:
    """Mark a run this owner holds as failed with `error` (a worker exception: the sweep goes on)."""
    with store.transaction() as conn:
        conn.execute("UPDATE runs SET status='failed', error=?, host=COALESCE(?, host), finished_at=?, claimed_by=NULL, "
                     "lease_until=NULL WHERE id=? AND status='running' AND claimed_by=?",
                     (error, host, utc_now(), run_id, owner))


def lost(store: Store, owner: str, run_id: str, error: str, max_attempts: int = MAX_ATTEMPTS) -> str:
    """The worker running `run_id` died: back to pending, or failed after `max_attempts` attempts.
    Returns the new status."""
    with store.transaction() as conn:
        row = conn.execute("SELECT attempts FROM runs WHERE id=? AND status='running' AND claimed_by=?",
                           (run_id, owner)).fetchone()
        if row is None:
            return "gone"
        status = "failed" if row["attempts"] >= max_attempts else "pending"
        conn.execute("UPDATE runs SET status=?, error=?, claimed_by=NULL, lease_until=NULL WHERE id=?",
                     (status, f"{error} (attempt {row['attempts']} of {max_attempts})" if status == "failed" else None,
                      run_id))
    return status


def release(store: Store, owner: str, ids=None) -> int:
    """Put the runs this owner holds (or those of `ids`) back to pending: a clean stop (Ctrl-C). The
    interrupted attempt is not counted, so `attempts` stays the number of executions that ended or died."""
    sql, args = "UPDATE runs SET status='pending', claimed_by=NULL, lease_until=NULL, attempts=MAX(attempts - 1, 0) " \
                "WHERE status='running' " \
                "AND claimed_by=?", [owner]
    if ids is not None:
        ids = list(ids)
        sql += f" AND id IN ({','.join('?' * len(ids))})"
        args += ids
    with store.transaction() as conn:
        return conn.execute(sql, args).rowcount
