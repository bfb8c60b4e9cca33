"""The results store: schema and API, a run shared by two experiments stored once, claims with a lease
(atomic, renewed, expired, dead holder noticed), one transaction per result, and the files that are not
a store (non-SQLite, foreign SQLite, another schema version) refused in one sentence with exit 2."""
import socket
import sqlite3
import subprocess
import sys
import shutil
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest

from wninit.suite.cli import main
from wninit.errors import UserError
from wninit.suite.sweep import leases
from wninit.suite.sweep.store import METRIC_KEYS, SCHEMA_VERSION, STATUSES, Store
from wninit.suite.train import RunConfig
from wninit.suite.train.run_ids import legacy_run_id

CFGS = [RunConfig(dataset="digits", depth=2, width=8, epochs=2, seed=s) for s in range(4)]


def _outcome(cfg, status="completed", acc=0.5):
    epochs = [{"epoch": e, "train_loss": 1.0 / (e + 1), "val_loss": 1.1, "train_acc": acc, "val_acc": acc, "lr": 0.01}
              for e in range(cfg.epochs)]
    metrics = dict.fromkeys(METRIC_KEYS)
    metrics.update(test_acc=acc, best_val_acc=acc, best_epoch=cfg.epochs - 1, epochs_done=cfg.epochs)
    return {"run_id": cfg.run_id, "status": status, "metrics": metrics, "epochs": epochs, "wall_s": 1.5,
            "env": {"wninit": "0.1.0", "torch": "2.x", "device": "cpu", "seed": cfg.seed, "threads": 1},
            "host": "here"}


def test_schema_meta_and_tables(tmp_path):
    store = Store(tmp_path / "s.db")
    meta = store.meta()
    assert meta["application"] == "wninit" and meta["schema_version"] == str(SCHEMA_VERSION)
    tables = {r[0] for r in store.conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert tables == {"meta", "runs", "memberships", "epochs", "aliases"}
    cols = [r[1] for r in store.conn.execute("PRAGMA table_info(runs)")]
    for col in ("id", "config", "status", "metrics", "error", "wall_s", "wninit_version", "torch_version", "device",
                "host", "seed", "created_at", "started_at", "finished_at", "claimed_by", "lease_until", "attempts"):
        assert col in cols
    assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_add_is_idempotent_and_shared_runs_are_stored_once(tmp_path):
    store = Store(tmp_path / "s.db")
    assert store.add("a", "quick", CFGS) == 4
    assert store.add("a", "quick", CFGS) == 0
    assert store.add("b", "paper", CFGS[:2] + [CFGS[0].replace(seed=9)]) == 1
    assert store.conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 5
    assert store.experiments() == [("a", "quick"), ("b", "paper")]
    shared = {r.id: r.experiments for r in store.runs()}
    assert shared[CFGS[0].run_id] == ["a", "b"] and shared[CFGS[3].run_id] == ["a"]
    assert len(store.runs("b")) == 3 and len(store.runs("a", "quick")) == 4
    assert store.counts() == {**dict.fromkeys(STATUSES, 0), "pending": 5}
    rec = store.runs("a")[0]
    assert rec.config == CFGS[0].resolved() and rec.status == "pending" and rec.metrics == {} and rec.seed == 0


def test_a_shrunk_spec_leaves_its_dropped_runs_out_of_its_membership_only(tmp_path):
    store = Store(tmp_path / "s.db")
    store.add("a", "quick", CFGS)
    store.add("b", "quick", CFGS[2:])
    store.add("a", "quick", CFGS[:2])  # without prune, an addition: still four
    assert len(store.runs("a", "quick")) == 4
    assert store.add("a", "quick", CFGS[:2], prune=True) == 0  # the spec now asks for two of its four runs
    assert [r.id for r in store.runs("a", "quick")] == [c.run_id for c in CFGS[:2]]
    assert len(store.runs("b", "quick")) == 2  # another experiment's memberships are untouched
    assert store.conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 4  # no run is deleted
    store.add("a", "quick", CFGS, prune=True)  # grown back: the stored runs are asked for again
    assert len(store.runs("a", "quick")) == 4


def test_claim_finish_and_epochs_in_one_transaction(tmp_path):
    store = Store(tmp_path / "s.db")
    store.add("a", "quick", CFGS)
    me = leases.owner_id()
    got = leases.claim(store, me, 3, experiment="a")
    assert [c.run_id for c in got] == [c.run_id for c in CFGS[:3]]
    assert store.counts("a")["running"] == 3
    assert leases.finish(store, _outcome(got[0], acc=0.75))
    assert not leases.finish(store, _outcome(got[0], acc=0.1))  # a finished run is never overwritten
    rec = store.run(got[0].run_id[:8])  # unique prefix
    assert rec.status == "completed" and rec.metrics["test_acc"] == 0.75 and rec.attempts == 1
    assert rec.wninit_version == "0.1.0" and rec.device == "cpu" and rec.host == "here" and rec.threads == 1
    assert [e["epoch"] for e in store.epochs(rec.id)] == [0, 1]
    leases.give_up(store, me, got[1].run_id, "ValueError: boom")
    assert store.run(got[1].run_id).status == "failed" and store.run(got[1].run_id).error == "ValueError: boom"
    assert leases.release(store, me) == 1  # the third goes back to pending, its attempt not counted
    assert store.run(got[2].run_id).status == "pending" and store.run(got[2].run_id).attempts == 0
    assert store.retry_failed("a") == 1 and store.counts("a")["pending"] == 3


def test_a_claim_is_exclusive_until_its_lease_expires(tmp_path, monkeypatch):
    clock = [1000.0]  # the leases' clock, moved by hand: no sleep, so a loaded machine cannot expire one early
    monkeypatch.setattr(leases, "time", SimpleNamespace(time=lambda: clock[0]))
    store = Store(tmp_path / "s.db")
    store.add("a", "quick", CFGS[:1])
    other = "elsewhere:1:1"  # a holder on another host: only its lease tells whether it lives
    assert len(leases.claim(store, other, 1, lease_s=30)) == 1
    clock[0] += 29
    assert leases.claim(store, "me:2:2", 1) == []
    assert leases.renew(store, other, [CFGS[0].run_id], lease_s=30) == {CFGS[0].run_id}
    clock[0] += 29  # past the first lease, inside the renewed one
    assert leases.claim(store, "me:2:2", 1) == []
    clock[0] += 2
    taken = leases.claim(store, "me:2:2", 1)
    assert [c.run_id for c in taken] == [CFGS[0].run_id]
    assert leases.renew(store, other, [CFGS[0].run_id]) == set()  # the old holder lost it
    assert store.run(CFGS[0].run_id).attempts == 2


def test_a_dead_holder_on_this_host_is_noticed_at_once(tmp_path):
    store = Store(tmp_path / "s.db")
    store.add("a", "quick", CFGS[:2])
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    dead = f"{socket.gethostname()}:{proc.pid}:12345"  # a process of this host that has exited
    assert leases.holder_alive(dead) is False
    assert leases.holder_alive(leases.owner_id()) is True
    leases.claim(store, dead, 2, lease_s=3600)
    assert len(leases.claim(store, leases.owner_id(), 2)) == 2


def test_worker_loss_goes_back_to_pending_then_fails(tmp_path):
    store = Store(tmp_path / "s.db")
    store.add("a", "quick", CFGS[:1])
    for attempt in range(1, leases.MAX_ATTEMPTS + 1):
        leases.claim(store, "me:1:1", 1)
        status = leases.lost(store, "me:1:1", CFGS[0].run_id, "worker lost: killed")
        assert status == ("failed" if attempt == leases.MAX_ATTEMPTS else "pending")
    assert "killed" in store.run(CFGS[0].run_id).error


def _sqlite(path, sql):
    conn = sqlite3.connect(path)
    conn.executescript(sql)
    conn.close()


@pytest.mark.parametrize("kind", ["text", "foreign", "version"])
def test_files_that_are_not_our_store_are_refused(tmp_path, capsys, kind):
    path = tmp_path / "x.db"
    if kind == "text":
        path.write_text("id,acc\n1,0.5\n" * 100)
        needle = "not a wninit store"
    elif kind == "foreign":
        _sqlite(path, "CREATE TABLE t(x);")
        needle = "not a wninit store"
    else:
        Store(path).close()
        _sqlite(path, "UPDATE meta SET value='99' WHERE key='schema_version';")
        needle = "schema_version 99"
    with pytest.raises(UserError) as err:
        Store(path)
    assert needle in str(err.value) and str(path) in str(err.value) and "\n" not in str(err.value)
    for argv in (["export", str(path)], ["sweep", "experiments/fig2_mlp_depth.toml", "--store", str(path)]):
        assert main(argv) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and needle in lines[0] and str(path) in lines[0]


def test_export_csv_and_parquet(tmp_path, capsys):
    store = Store(tmp_path / "s.db")
    store.add("a", "quick", CFGS[:2])
    got = leases.claim(store, "me:1:1", 1)
    leases.finish(store, _outcome(got[0], acc=0.25))
    store.close()
    assert main(["export", str(tmp_path / "s.db"), "--out", str(tmp_path / "runs.csv")]) == 0
    import csv

    rows = list(csv.DictReader(open(tmp_path / "runs.csv")))
    assert len(rows) == 2 and rows[0]["status"] == "completed" and float(rows[0]["test_acc"]) == 0.25
    assert rows[0]["depth"] == "2" and rows[0]["experiments"] == "a" and rows[1]["status"] == "pending"
    assert rows[0]["threads"] == "1" and rows[0]["host"] == "here"  # what the run used, not the config's None
    epochs = list(csv.DictReader(open(tmp_path / "runs_epochs.csv")))
    assert len(epochs) == 2 and epochs[0]["run_id"] == got[0].run_id
    code = main(["export", str(tmp_path / "s.db"), "--format", "parquet"])
    try:
        import pandas
        import pyarrow  # noqa: F401
    except ImportError:  # parquet without its engine: one sentence, exit 2
        assert code == 2 and "pyarrow" in capsys.readouterr().err
    else:
        assert code == 0 and len(pandas.read_parquet(tmp_path / "s.parquet")) == 2


@pytest.mark.parametrize("argv", [["export", "{db}"], ["rerun", "abc", "--store", "{db}"]])
def test_readers_leave_an_empty_file_alone(tmp_path, capsys, argv):
    """Reading commands never turn an empty file into a store (SQLite would treat it as an empty database)."""
    from wninit.suite.cli import main

    db = tmp_path / "empty.db"
    db.write_bytes(b"")
    assert main([a.format(db=db) for a in argv]) == 2
    assert "is an empty file, not a wninit store" in capsys.readouterr().err
    assert db.read_bytes() == b"" and sorted(p.name for p in tmp_path.iterdir()) == ["empty.db"]


# tests/data/store_v1.db: written by tests/data/make_store_v1.py with the store of schema 1 (ids without a schema
# version). Its runs' {schema-1 id: current id}, computed once, and its one stale row.
V1_STORE = Path(__file__).parent / "data" / "store_v1.db"
V1_TO_V2 = {"2d01e364a12d": "2ff0605b1077", "425a6438b6bb": "4e5c97eaacb9", "925cb69ddbe6": "acb74d280e73"}
V1_STALE = "3baf46d50168"


def test_a_store_of_schema_1_opens_with_its_ids_mapped(tmp_path):
    db = tmp_path / "old.db"
    shutil.copy(V1_STORE, db)
    with pytest.warns(UserWarning, match=r"^1 runs in .*old\.db have an id that is not their config's"):
        store = Store(db)
    assert store.meta()["schema_version"] == str(SCHEMA_VERSION) == "3"
    assert [r.id for r in store.runs("old", "quick")] == [*V1_TO_V2.values(), V1_STALE]
    assert dict(store.conn.execute("SELECT old, new FROM aliases").fetchall()) == V1_TO_V2
    for old, new in V1_TO_V2.items():
        assert store.run(old).id == store.run(old[:5]).id == store.run(new).id == new
        assert store.run(new).config.run_id == new and legacy_run_id(store.run(new).config) == old
    done = store.run("2ff0605b1077")
    assert done.status == "completed" and done.metrics["test_acc"] == 0.5 and done.experiments == ["old"]
    assert [e["epoch"] for e in store.epochs(done.id)] == [0, 1]
    assert (done.code_commit, done.code_dirty) == (None, None)  # not recorded by schema 1
    assert (done.cpu, done.isa, done.gpu) == (None, None, None)  # nor by schema 2
    stale = store.run(V1_STALE)  # kept as it was: its id is neither its config's current nor its schema-1 id
    assert stale.status == "pending" and V1_STALE not in (stale.config.run_id, legacy_run_id(stale.config))
    assert store.conn.execute("PRAGMA foreign_key_check").fetchall() == []
    # a sweep asking for the same configs finds them stored: nothing new to run
    cfgs = [RunConfig.from_json(r.config.to_json()) for r in store.runs() if r.id != V1_STALE]
    assert store.add("old", "quick", cfgs) == 0
    store.close()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # migrated once: opening it again says nothing and changes nothing
        with Store(db) as again:
            assert [r.id for r in again.runs()] == [*V1_TO_V2.values(), V1_STALE]
    assert main(["export", str(db), "--out", str(tmp_path / "runs.csv")]) == 0
    assert "2ff0605b1077" in (tmp_path / "runs.csv").read_text()


def test_an_id_prefix_is_matched_literally(tmp_path):
    """``%``, ``_`` and ``\\`` in a prefix are characters, not LIKE wildcards."""
    store = Store(tmp_path / "s.db")
    store.add("a", "quick", CFGS[:1])
    for prefix in ("%", "_", "_" * 12, CFGS[0].run_id[:3] + "%", CFGS[0].run_id[:3] + "_", "\\"):
        with pytest.raises(UserError, match="^no run in .* match id"):
            store.run(prefix)
    assert store.run(CFGS[0].run_id[:3]).id == CFGS[0].run_id
