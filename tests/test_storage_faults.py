"""Storage faults: a crash during a checkpoint write or inside a store transaction leaves the
previous state readable (atomic replace, SQLite transactions); a read-only output folder or a full disk
gives one sentence and exit 2 and keeps what was stored before.

Tests run as root in CI, where ``chmod`` does not stop writes: ``_read_only`` checks by trying, and then
simulates the folder with PermissionError at the write path instead. A full disk is simulated with
ENOSPC at the same place (files) or SQLite's page limit (store)."""
import errno
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from wninit.suite import _files as atomic_files
from wninit.suite.cli import main
from wninit.suite.sweep import leases
from wninit.suite.sweep.store import METRIC_KEYS, Store
from wninit.suite.train import RunConfig, fit
from wninit.suite.train import checkpoint as ckpt

CFG = RunConfig(dataset="synthetic", arch="mlp", depth=2, width=8, epochs=3, batch_size=64, lr=0.05, momentum=0.9,
                threads=1)


def _train_argv(out: Path) -> list[str]:
    return ["train", "--dataset", "synthetic", "--depth", "2", "--width", "8", "--epochs", "3", "--batch-size", "64",
            "--lr", "0.05", "--momentum", "0.9", "--threads", "1", "--no-progress", "--out", str(out)]


def _files(folder: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def _interrupted_run(out: Path, epochs_done: int = 1) -> dict:
    """A run directory holding the checkpoint after ``epochs_done`` epochs; returns its files' bytes."""
    class Stop(Exception):
        pass

    def stop(row):
        if row["epoch"] == epochs_done - 1:
            raise Stop

    with pytest.raises(Stop):
        fit(CFG, out_dir=out, on_epoch=stop)
    return _files(out)


# -- (a) a crash during a checkpoint write ------------------------------------------------------------
@pytest.mark.parametrize("where", ["replace", "fsync"])
def test_a_crash_while_writing_a_checkpoint_keeps_the_previous_one(tmp_path, monkeypatch, where):
    full = fit(CFG)
    out = tmp_path / "run"
    real = {"replace": os.replace, "fsync": os.fsync}[where]
    calls = []

    def crash_on_second_checkpoint(*args):
        # os.replace(tmp, dst) or os.fsync(fd): the second checkpoint.pt write (epoch 1) dies midway,
        # after the temp file is complete (replace) or before it is flushed to disk (fsync)
        target = str(args[1]) if where == "replace" else os.readlink(f"/proc/self/fd/{args[0]}")
        if "checkpoint.pt" in target:
            calls.append(target)
            if len(calls) == 2:
                raise OSError(errno.EIO, "simulated crash", target)
        return real(*args)

    monkeypatch.setattr(os, where, crash_on_second_checkpoint)
    with pytest.raises(OSError, match="simulated crash"):
        fit(CFG, out_dir=out)
    monkeypatch.undo()
    state = ckpt.load_checkpoint(out, CFG)
    assert state is not None and state["epoch"] == 1 and len(state["rows"]) == 1  # epoch 0's checkpoint
    assert not (out / "result.json").exists() and not list(out.glob(".*tmp"))  # no partial or temp file
    resumed = fit(CFG, out_dir=out)
    assert resumed.metrics() == full.metrics() and resumed.epochs == full.epochs


def test_a_process_killed_between_temp_write_and_rename_resumes_exactly(tmp_path):
    """SIGKILL (no cleanup runs) after the second checkpoint's temp file is written, before its rename."""
    full = fit(CFG)
    out = tmp_path / "run"
    child = textwrap.dedent(f"""
        import os, signal, sys
        from wninit.suite.train import RunConfig, fit
        real, seen = os.replace, []
        def replace(src, dst):
            if str(dst).endswith("checkpoint.pt"):
                seen.append(dst)
                if len(seen) == 2:
                    os.kill(os.getpid(), signal.SIGKILL)
            return real(src, dst)
        os.replace = replace
        fit(RunConfig.from_json(sys.argv[1]), out_dir={str(out)!r})
    """)
    proc = subprocess.run([sys.executable, "-c", child, CFG.to_json()], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    leftovers = list(out.glob(".checkpoint.pt.*.tmp"))
    assert len(leftovers) == 1  # the torn write: a complete temp file that never replaced checkpoint.pt
    state = ckpt.load_checkpoint(out, CFG)
    assert state["epoch"] == 1 and not (out / "result.json").exists()
    resumed = fit(CFG, out_dir=out)
    assert resumed.metrics() == full.metrics() and resumed.epochs == full.epochs


# -- (b) a crash inside a store write transaction -----------------------------------------------------
RUNS = [RunConfig(dataset="synthetic", depth=2, width=8, epochs=2, seed=s) for s in range(3)]


def _outcome(cfg, acc=0.5):
    metrics = dict.fromkeys(METRIC_KEYS)
    metrics.update(test_acc=acc, best_val_acc=acc, best_epoch=1, epochs_done=2)
    return {"run_id": cfg.run_id, "status": "completed", "metrics": metrics, "wall_s": 1.0, "host": "here",
            "epochs": [{"epoch": e, "train_loss": 1.0, "val_loss": 1.0, "train_acc": acc, "val_acc": acc, "lr": 0.01}
                       for e in range(2)],
            "env": {"wninit": "0.1.0", "torch": "2.x", "device": "cpu", "seed": cfg.seed, "threads": 1}}


def _dump(db: Path) -> dict:
    con = sqlite3.connect(db)
    try:
        return {t: sorted(map(tuple, con.execute(f"SELECT * FROM {t}"))) for t in ("meta", "runs", "memberships", "epochs")}
    finally:
        con.close()


def _store_with_one_result(db: Path) -> tuple[Store, list]:
    store = Store(db)
    store.add("exp", "quick", RUNS)
    me = leases.owner_id()
    got = leases.claim(store, me, 3, experiment="exp")
    assert leases.finish(store, _outcome(got[0], acc=0.75))
    return store, got


class _FailingConn:
    """The store's connection, except that ``executemany`` (the epochs insert of ``finish``, after its
    UPDATE has run inside the transaction) raises: a crash halfway through one write."""

    def __init__(self, conn):
        self._conn = conn

    def __getattr__(self, name):
        return getattr(self._conn, name)

    def executemany(self, *a):
        raise OSError(errno.EIO, "simulated crash inside the transaction")


def test_a_crash_inside_a_store_transaction_changes_nothing(tmp_path):
    db = tmp_path / "s.db"
    store, got = _store_with_one_result(db)
    before = _dump(db)
    real = store.conn
    store.conn = _FailingConn(real)
    with pytest.raises(OSError, match="simulated crash"):
        leases.finish(store, _outcome(got[1], acc=0.25))
    store.conn = real
    assert _dump(db) == before  # the UPDATE that ran before the crash was rolled back
    assert store.run(got[1].run_id).status == "running" and store.epochs(got[1].run_id) == []
    # an exception of any kind after the first statement of a raw transaction: rolled back too
    with pytest.raises(RuntimeError):
        with store.transaction() as conn:
            conn.execute("UPDATE runs SET status='failed', error='x' WHERE id=?", (got[0].run_id,))
            conn.execute("DELETE FROM epochs")
            raise RuntimeError("crash")
    assert _dump(db) == before
    # the store goes on: the interrupted write can be done again, and reads are consistent
    assert leases.finish(store, _outcome(got[1], acc=0.25))
    assert store.run(got[1].run_id).metrics["test_acc"] == 0.25 and len(store.epochs(got[1].run_id)) == 2
    assert store.run(got[0].run_id).metrics["test_acc"] == 0.75
    store.close()


def test_a_process_killed_inside_a_store_transaction_changes_nothing(tmp_path):
    db = tmp_path / "s.db"
    store, got = _store_with_one_result(db)
    store.close()
    before = _dump(db)
    child = textwrap.dedent(f"""
        import os, signal
        from wninit.suite.sweep.store import Store
        store = Store({str(db)!r})
        with store.transaction() as conn:
            conn.execute("UPDATE runs SET status='completed', metrics='{{}}' WHERE status='running'")
            conn.execute("DELETE FROM epochs")
            conn.execute("DELETE FROM memberships")
            os.kill(os.getpid(), signal.SIGKILL)  # before COMMIT: no cleanup, no rollback
    """)
    proc = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert _dump(db) == before  # SQLite's journal undoes the torn transaction on the next open
    with Store(db) as again:
        assert again.counts("exp") == {"pending": 0, "running": 2, "completed": 1, "diverged": 0, "failed": 0}


# -- (c) a read-only output folder, a full disk -------------------------------------------------------
def _read_only(folder: Path, monkeypatch, code: int = errno.EACCES) -> None:
    """Make ``folder`` unwritable: chmod, and when that does not stop writes (root), fail every write
    into it with ``code`` (EACCES: read-only; ENOSPC: full disk) at the files' write path."""
    folder.chmod(0o500)
    probe = folder / ".probe"
    try:
        probe.write_bytes(b"")
    except PermissionError:
        if code == errno.EACCES:
            return  # the real thing
    else:
        probe.unlink()
    real_open = open

    def guarded_open(file, mode="r", *a, **k):
        if any(c in mode for c in "wax+") and Path(file).resolve().parent == folder.resolve():
            raise OSError(code, os.strerror(code), str(file))
        return real_open(file, mode, *a, **k)

    monkeypatch.setattr(atomic_files, "open", guarded_open, raising=False)  # the one write path of every file


@pytest.mark.parametrize("code", [errno.EACCES, errno.ENOSPC], ids=["read-only", "disk-full"])
def test_an_unwritable_run_folder_is_one_sentence_and_keeps_the_checkpoint(tmp_path, monkeypatch, capsys, code):
    full = fit(CFG)
    out = tmp_path / "run"
    kept = _interrupted_run(out, epochs_done=1)
    _read_only(out, monkeypatch, code)
    assert main(_train_argv(out)) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("wninit: error:") and str(out) in lines[0], captured.err
    assert os.strerror(code) in lines[0] and "Traceback" not in captured.err + captured.out
    monkeypatch.undo()
    out.chmod(0o700)
    assert _files(out) == kept  # checkpoint and CSV as they were, no temp file, no result
    # once the folder is writable again the same command continues to the uninterrupted result
    assert main(_train_argv(out)) == 0
    stored = ckpt.read_result(out, CFG)
    assert stored.test_acc == full.test_acc and stored.epochs == full.epochs


def _limit_store_writes(monkeypatch, how: str) -> None:
    """Every connection the store opens: read-only (``query_only``) or full (no page beyond its size)."""
    real_connect = sqlite3.connect

    def connect(*a, **k):
        con = real_connect(*a, **k)
        if how == "read-only":
            con.execute("PRAGMA query_only=ON")
        else:
            pages = con.execute("PRAGMA page_count").fetchone()[0]
            con.execute(f"PRAGMA max_page_count={pages}")
        return con

    monkeypatch.setattr(sqlite3, "connect", connect)


@pytest.mark.parametrize("how,words", [("read-only", "read-only"), ("full", "what was stored before is kept")])
def test_an_unwritable_store_is_one_sentence_and_keeps_its_runs(tmp_path, monkeypatch, capsys, how, words):
    db = tmp_path / "s.db"
    store, _ = _store_with_one_result(db)
    store.close()
    before = _dump(db)
    spec = tmp_path / "more.toml"  # 40 new runs: more rows than the store's free pages hold
    spec.write_text('[base]\ndataset = "synthetic"\ndepth = 2\nwidth = 8\nepochs = 1\n'
                    f'[grid]\nseed = {list(range(100, 140))}\n[profiles.quick]\n')
    _limit_store_writes(monkeypatch, how)
    assert main(["sweep", str(spec), "--store", str(db), "--workers", "1", "--no-progress"]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("wninit: error:") and str(db) in lines[0], captured.err
    assert words in lines[0] and "Traceback" not in captured.err + captured.out
    monkeypatch.undo()
    assert _dump(db) == before  # nothing half-added; the finished result is still there
    with Store(db) as again:
        assert again.run(RUNS[0].run_id).metrics["test_acc"] == 0.75
