"""Process faults and concurrency: the sweep driver SIGKILLed at several points, a worker
SIGKILLed, SIGINT and SIGTERM; after rerunning, every run is in the store exactly once, finished, with
the metrics of an uninterrupted sweep. Two sweeps on one store share the work and run nothing twice."""
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from wninit.suite.cli import main
from wninit.suite.sweep import Store

N_RUNS = 8
# Long enough per run that every point of the kill plan falls inside a sweep: at 3 epochs an idle machine
# finished the last 5 runs before the test could see the driver holding one, and the plan ended early.
EPOCHS = 15
SPEC = textwrap.dedent("""
    [experiment]
    name = "faults"
    [base]
    dataset = "synthetic"
    arch = "mlp"
    depth = 2
    width = 8
    epochs = {epochs}
    batch_size = 64
    lr = 0.05
    momentum = 0.9
    [grid]
    scheme = ["proposed", "datadep"]
    seed = [1, 2, 3, 4]
    [profiles.quick]
""").replace("{epochs}", str(EPOCHS))
# Every wait below is bounded, so a hung sweep fails the test instead of hanging CI. A guard against hangs only,
# so wide: on the 2 cores at load 20 (other jobs) the first two runs of the shared sweep took 2.5 min.
DEADLINE_S = 900
_STARTED: list = []  # the sweeps a test started: none outlives it, even when it fails


@pytest.fixture(autouse=True)
def _no_orphan_sweeps():
    yield
    while _STARTED:
        proc = _STARTED.pop()
        if proc.poll() is None:
            proc.kill()  # its workers follow within a second (worker.WATCHDOG_S)
            proc.wait()


def _spec(tmp_path: Path, runs: int = N_RUNS) -> Path:
    path = tmp_path / "faults.toml"
    path.write_text(SPEC.replace("seed = [1, 2, 3, 4]", f"seed = {list(range(1, runs // 2 + 1))}"))
    return path


def _start(spec: Path, db: Path, workers: int = 2) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "wninit", "sweep", str(spec), "--store", str(db),
                             "--workers", str(workers), "--no-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    _STARTED.append(proc)
    return proc


def _counts(db: Path, pid: int | None = None) -> dict:
    """status -> runs, plus "mine": the runs that the driver ``pid`` is running now."""
    if not db.exists():
        return {}
    try:
        with Store(db) as store:
            counts = store.counts()
            if pid is not None:
                counts["mine"] = store.conn.execute("SELECT COUNT(*) FROM runs WHERE status='running' AND "
                                                    "claimed_by LIKE ?", (f"%:{pid}:%",)).fetchone()[0]
            return counts
    except ValueError:  # being created right now
        return {}


def _wait_for(proc: subprocess.Popen, db: Path, pred) -> bool:
    """Poll the store until ``pred(counts)``; False if the sweep ended first."""
    end = time.monotonic() + DEADLINE_S
    while time.monotonic() < end:
        if pred(_counts(db, proc.pid)):
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.02)
    proc.kill()
    raise AssertionError(f"the sweep made no progress in {DEADLINE_S} s: {_counts(db)}")


def _workers_of(pid: int) -> list[int]:
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    workers = []
    for child in children:
        try:
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                workers.append(int(child))
        except OSError:  # it exited since the driver's list was read
            pass
    return workers


def _signal(proc: subprocess.Popen, db: Path, sig: str) -> tuple[int | None, str]:
    """Send ``SIG{sig}`` to the driver; its exit code and output, the code None when the driver had finished
    its work before the signal landed.

    Between the test's last look at the driver and the signal, the driver may record its last run and exit
    0, or take the signal in its shutdown, after its handlers are gone; every run is then finished in the
    store and there was nothing left to interrupt.
    """
    if proc.poll() is None:
        os.kill(proc.pid, getattr(signal, f"SIG{sig}"))
    code = proc.wait(timeout=DEADLINE_S)
    out = proc.stdout.read()
    proc.stdout.close()
    interrupted = code == -signal.SIGKILL if sig == "KILL" else f"stopped by SIG{sig}" in out
    if not interrupted and _counts(db).get("completed", 0) == N_RUNS:
        return None, out
    return code, out


def _finished_metrics(db: Path) -> dict:
    with Store(db) as store:
        return {r.id: (r.status, r.metrics, store.epochs(r.id)) for r in store.runs()}


def test_kills_lose_nothing_and_repeat_nothing(tmp_path):
    spec = _spec(tmp_path)
    reference = tmp_path / "reference.db"
    assert main(["sweep", str(spec), "--store", str(reference), "--workers", "2", "--no-progress"]) == 0
    expected = _finished_metrics(reference)
    assert len(expected) == N_RUNS and {s for s, _, _ in expected.values()} == {"completed"}

    db = tmp_path / "killed.db"
    # (signal, when): SIGKILL of the driver mid-run at growing progress (plus a seeded random delay), a
    # worker SIGKILLed, a clean SIGINT and SIGTERM; each later start continues from what the store holds
    plan = [("KILL", 0), ("WORKER", 1), ("INT", 3), ("KILL", 4), ("TERM", 5), ("KILL", 6)]
    kills, rng = 0, random.Random(0)
    for sig, done in plan:
        proc = _start(spec, db)
        hit = _wait_for(proc, db, lambda c: c.get("completed", 0) >= done and c.get("mine", 0) > 0)
        if not hit:  # it finished before this point: nothing left to interrupt
            assert proc.wait(timeout=DEADLINE_S) == 0
            break
        if sig == "WORKER":
            workers = _workers_of(proc.pid)
            assert workers, "the driver has no worker processes"
            os.kill(workers[0], signal.SIGKILL)
            kills += 1
            _wait_for(proc, db, lambda c: c.get("completed", 0) >= done + 2)
            sig = "KILL"
        time.sleep(rng.uniform(0.0, 0.3))  # a random point inside the runs (or a store write) in flight
        code, out = _signal(proc, db, sig)
        if code is None:  # it finished its work before the signal landed: nothing left to interrupt
            break
        kills += 1
        after = _counts(db, proc.pid)
        if sig == "KILL":
            assert code == -signal.SIGKILL, out
        else:  # a clean stop: exit 130/143, nothing of its left running, the sentence says how to go on
            assert code == (130 if sig == "INT" else 143), out
            assert after["mine"] == 0 and f"stopped by SIG{sig}" in out, out
    assert kills >= 5  # 4 drivers and 1 worker SIGKILLed, 2 clean stops
    proc = _start(spec, db)
    assert proc.wait(timeout=DEADLINE_S) == 0
    proc.stdout.close()
    got = _finished_metrics(db)
    assert got == expected  # every run once, completed, with the same metrics and epochs
    with Store(db) as store:
        assert store.conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == N_RUNS
        assert store.conn.execute("SELECT COUNT(*) FROM epochs").fetchone()[0] == N_RUNS * EPOCHS
        assert all(r["claimed_by"] is None for r in store.conn.execute("SELECT claimed_by FROM runs"))


def test_two_sweeps_on_one_store_share_the_work(tmp_path):
    runs = 12
    spec, db = _spec(tmp_path, runs), tmp_path / "shared.db"
    Store(db).close()  # both open an existing store
    procs = [_start(spec, db, workers=1) for _ in range(2)]
    outs = []
    for proc in procs:
        assert proc.wait(timeout=DEADLINE_S) == 0
        outs.append(proc.stdout.read())
        proc.stdout.close()
    ran = [int(out.split("this call ran ")[1].split()[0]) for out in outs]
    assert sum(ran) == runs, outs  # each run executed by exactly one of the two
    with Store(db) as store:
        recs = store.runs()
        assert len(recs) == runs and {r.status for r in recs} == {"completed"}
        assert {r.attempts for r in recs} == {1}  # claimed once: never run twice
