"""`--backend slurm` through submitit's local executor (the code path of a cluster, on this machine): a sweep
whose driver is killed mid-way and resumed stores every run exactly once, with the local backend's results;
a preempted task is requeued and still gives the run's result; bad input is one sentence, exit 2, and the
store keeps what it had. Every wait is bounded."""
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import wninit
from wninit.suite.cli import main
from wninit.suite.sweep import Store, leases, load_spec, run_sweep
from wninit.suite.sweep.worker import run_one
from tiny_specs import tiny_spec

submitit = pytest.importorskip("submitit")  # the `slurm` extra; CI installs it with the test extras

SPEC = tiny_spec("tiny_slurm", """
    lr = 0.05
    [grid]
    scheme = ["proposed", "datadep"]
    seed = [1, 2, 3]
    lr = [0.05, 0.1]
    [profiles.quick]
""")
BOUND_S = 150
LOCAL = {"executor": "local"}


def _env():
    """The child driver imports this wninit (not another checkout's)."""
    src = str(Path(wninit.__file__).parents[1])
    return dict(os.environ, PYTHONPATH=os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]))


def _rows(db):
    """id -> (status, metrics, epochs, finished_at, attempts) read straight from the file."""
    with Store(db) as store:
        return {r.id: (r.status, r.metrics, store.epochs(r.id), r.finished_at, r.attempts) for r in store.runs()}


def _completed(db) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return conn.execute("SELECT COUNT(*) FROM runs WHERE status='completed'").fetchone()[0]
    except sqlite3.OperationalError:  # not created yet
        return 0


def _results(rows):
    return {i: (r[0], r[1], r[2]) for i, r in rows.items()}


@pytest.fixture
def spec(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(SPEC)
    return path


def _local_sweep(spec, db):
    exp = load_spec(spec, "quick")
    with Store(db) as store:
        store.add(exp.name, exp.profile, exp.runs)
        run_sweep(store, [(exp.name, exp.profile)], backend="local", workers=2, progress=False)
    return _rows(db)


@pytest.mark.slow  # 24 short-lived task processes and a local sweep: ~30 s on 2 idle cores
def test_killed_and_resumed_slurm_sweep_stores_each_run_once_with_the_local_results(tmp_path, spec):
    db, logs = tmp_path / "slurm.db", tmp_path / "logs"
    cmd = [sys.executable, "-m", "wninit", "sweep", str(spec), "--store", str(db), "--backend", "slurm",
           "--slurm-executor", "local", "--slurm-logs", str(logs), "--workers", "3", "--no-progress"]
    driver = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + BOUND_S
    while _completed(db) < 4 and driver.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    driver.kill()  # kill -9 mid-way: no clean-up, its claims stay behind, its tasks run on orphaned
    driver.wait(timeout=30)
    before = _rows(db)
    done_before = {i: r for i, r in before.items() if r[0] == "completed"}
    assert 4 <= len(done_before) < 12, f"the kill must land mid-way: {driver.stderr.read().decode()[-2000:]}"
    assert any(r[0] == "running" for r in before.values())  # the dead driver's claims

    exp = load_spec(spec, "quick")
    with Store(db) as store:  # the same command again (in-process): the dead holder's runs are taken at once
        summary = run_sweep(store, [(exp.name, exp.profile)], backend="slurm", workers=3, progress=False,
                            slurm={"folder": logs, **LOCAL})
    assert summary.executed == 12 - len(done_before) and summary.lost == 0
    after = _rows(db)
    assert len(after) == 12 and all(r[0] == "completed" for r in after.values())
    for run_id, row in done_before.items():  # written once: not rerun, not rewritten
        assert after[run_id] == row and row[4] == 1
    assert all(len(r[2]) == 2 for r in after.values())  # one row per epoch, none doubled
    assert _results(after) == _results(_local_sweep(spec, tmp_path / "local.db"))
    assert not list((logs / "runs").glob("*/checkpoint.pt"))  # every finished run's checkpoint was dropped


def test_stacked_groups_run_one_task_each_with_the_local_results(tmp_path):
    spec = tmp_path / "eight.toml"
    spec.write_text(tiny_spec("tiny_slurm_batch", """
        lr = 0.05
        [grid]
        scheme = ["proposed", "datadep"]
        seed = [1, 2, 3, 4]
        [profiles.quick]
    """))
    exp = load_spec(spec, "quick")
    rows = {}
    for backend, slurm in (("slurm", {"folder": tmp_path / "logs", **LOCAL}), ("local", None)):
        with Store(tmp_path / f"{backend}.db") as store:
            store.add(exp.name, exp.profile, exp.runs)
            summary = run_sweep(store, [(exp.name, exp.profile)], backend=backend, workers=2, batch_runs=True,
                                slurm=slurm, progress=False)
            assert summary.executed == 8 and summary.counts["completed"] == 8
        rows[backend] = _results(_rows(tmp_path / f"{backend}.db"))
    assert len(list((tmp_path / "logs").glob("*_log.out"))) == 2  # two stacked groups of four runs: two tasks
    assert rows["slurm"] == rows["local"]


def _fake_slurm(folder: Path, monkeypatch) -> Path:
    """sbatch, sinfo, srun and scancel stand-ins on PATH that record what they were given."""
    folder.mkdir()
    scripts = {"sbatch": 'cp "$1" "$(dirname "$0")/submitted.sh"\necho "Submitted batch job 4242"',
               "sinfo": "printf 'gpu\\ncpu\\n'", "srun": "exit 0", "scancel": 'echo "$@" >> "$(dirname "$0")/cancelled"'}
    for name, body in scripts.items():
        (folder / name).write_text(f"#!/bin/sh\n{body}\n")
        (folder / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    return folder


def test_sbatch_gets_the_array_partition_gpus_time_and_preemption_signal(tmp_path, monkeypatch, spec):
    from wninit.suite.sweep.slurm import SlurmPool

    fake = _fake_slurm(tmp_path / "bin", monkeypatch)
    pool = SlurmPool(None, None, folder=tmp_path / "logs", partition="gpu", gpus_per_run=1, time_min=120,
                     array_parallelism=2, options={"account": "lab"})
    assert pool.execution == {"device": "cuda"}  # GPU tasks train on their GPU
    handles = [pool.submit([cfg]) for cfg in load_spec(spec, "quick").runs[:3]]
    pool._flush()  # one sbatch call for the three groups
    script = (fake / "submitted.sh").read_text()
    for line in ("--array=0-2%2", "--partition=gpu", "--time=120", "--gpus-per-node=1", "--account=lab",
                 "--cpus-per-task=1", "--signal=USR2@"):
        assert f"#SBATCH {line}" in script, script
    assert [pool._jobs[h].job_id for h in handles] == ["4242_0", "4242_1", "4242_2"]
    pool.stop()  # a Ctrl-C of the driver cancels every task
    assert (fake / "cancelled").read_text().split() == ["4242_0", "4242_1", "4242_2"]


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _wait_for(predicate, what: str):
    deadline = time.monotonic() + BOUND_S
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_preempted_task_is_requeued_and_gives_the_run_s_result(tmp_path, spec):
    from wninit.suite.sweep.slurm import SlurmPool

    cfg = load_spec(spec, "quick").runs[0].replace(epochs=60)  # long enough to preempt mid-way
    pool = SlurmPool(1, None, folder=tmp_path / "logs", executor="local")
    handle = pool.submit([cfg])
    assert pool.wait(0) == []  # the array is submitted, the task not finished
    job = pool._jobs[handle]
    ckpt = tmp_path / "logs" / "runs" / cfg.run_id / "checkpoint.pt"
    _wait_for(ckpt.exists, "the task's first epoch checkpoint")
    (task,) = _children(int(job.job_id))  # the task under submitit's local controller
    os.kill(task, signal.SIGUSR2)  # what SLURM sends before preempting a job
    out = []
    _wait_for(lambda: out.extend(pool.wait(0.5)) or out, "the requeued task")
    (got_handle, (outcome,)), = out
    log = Path(job.paths.stderr).read_text() + Path(job.paths.stdout).read_text()
    assert "this job is preempted" in log and "Requeued job" in log, log
    threads = torch.get_num_threads()
    try:
        want = run_one(cfg.to_dict(), None, 1)  # what the local backend's one-thread worker computes
    finally:
        torch.set_num_threads(threads)
    assert got_handle is handle and outcome["status"] == "completed"
    assert (outcome["metrics"], outcome["epochs"]) == (want["metrics"], want["epochs"])
    assert not ckpt.parent.exists()


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    """A store with two completed runs of the spec and the rest pending."""
    folder = tmp_path_factory.mktemp("seeded")
    spec = folder / "tiny.toml"
    spec.write_text(SPEC)
    exp = load_spec(spec, "quick")
    with Store(folder / "seed.db") as store:
        store.add(exp.name, exp.profile, exp.runs)
        for cfg in leases.claim(store, "seed", 2):  # trained here: no pool to start
            leases.finish(store, run_one(cfg.to_dict()))
    return spec, folder / "seed.db"


def _bad(tmp_path, seeded, capsys, *extra, child_lines: int = 0):
    """Run the CLI with ``extra``: exit 2, one sentence (after ``child_lines`` a SLURM command printed itself),
    no traceback, the store as it was; returns the sentence."""
    spec, seed = seeded
    db = tmp_path / "s.db"
    db.write_bytes(seed.read_bytes())
    before = _rows(db)
    code = main(["sweep", str(spec), "--store", str(db), "--backend", "slurm", "--no-progress", *extra])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "Traceback" not in err and len(err.splitlines()) == 1 + child_lines, err
    err = err.splitlines()[-1]
    assert _rows(db) == before  # nothing lost, nothing left running
    assert sum(r[0] == "completed" for r in before.values()) == 2
    return err


def test_slurm_backend_without_submitit_is_one_sentence(tmp_path, seeded, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "submitit", None)  # `import submitit` raises ImportError
    err = _bad(tmp_path, seeded, capsys, "--slurm-executor", "local")
    assert "needs submitit" in err and "wninit[slurm]" in err


def test_unknown_partition_is_one_sentence(tmp_path, seeded, capsys, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    sinfo = bin_dir / "sinfo"  # a cluster with two partitions
    sinfo.write_text("#!/bin/sh\nprintf 'gpu\\ncpu\\ngpu\\n'\n")
    sinfo.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    err = _bad(tmp_path, seeded, capsys, "--slurm-executor", "local", "--partition", "gpuu")
    assert "'gpuu'" in err and "(cpu, gpu)" in err


def test_unknown_slurm_option_is_one_sentence(tmp_path, seeded, capsys):
    err = _bad(tmp_path, seeded, capsys, "--slurm-executor", "local", "--slurm-option", "partitionn=gpu")
    assert "unknown SLURM option partitionn" in err


def test_unwritable_log_folder_is_one_sentence(tmp_path, seeded, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("")  # a folder under a file cannot be made, whoever runs the test (root too)
    err = _bad(tmp_path, seeded, capsys, "--slurm-executor", "local", "--slurm-logs", str(blocker / "logs"))
    assert "cannot write the submitit log folder" in err


def test_no_sbatch_is_one_sentence(tmp_path, seeded, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch on this PATH
    err = _bad(tmp_path, seeded, capsys)
    assert "sbatch not found" in err and "--slurm-executor local" in err


def test_sbatch_refusing_the_array_is_one_sentence_and_releases_the_claims(tmp_path, seeded, capsys, monkeypatch):
    fake = _fake_slurm(tmp_path / "bin", monkeypatch)
    (fake / "sbatch").write_text("#!/bin/sh\necho 'sbatch: error: Batch job submission failed: Invalid account' >&2\n"
                                 "exit 1\n")  # refused after the runs were claimed
    err = _bad(tmp_path, seeded, capsys, "--slurm-option", "account=nolab", child_lines=1)  # sbatch's own line
    assert err.startswith("wninit: error: SLURM refused the job array") and "Invalid account" in err


@pytest.mark.parametrize("flag", [["--partition", "gpu"], ["--array-parallelism", "4"], ["--slurm-option", "qos=high"]])
def test_slurm_flags_need_the_slurm_backend(tmp_path, seeded, capsys, flag):
    spec, seed = seeded
    db = tmp_path / "s.db"
    db.write_bytes(seed.read_bytes())
    code = main(["sweep", str(spec), "--store", str(db), "--no-progress", *flag])
    assert code == 2 and "for --backend slurm" in capsys.readouterr().err
