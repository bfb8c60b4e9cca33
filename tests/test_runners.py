"""The local pool's worker processes are replaced by fresh ones every RECYCLE_AFTER groups per worker, without
losing a group: the old generation finishes what it holds while the new one starts."""
import os
import time

import pytest

from wninit.errors import UserError

from wninit.suite.sweep import runners
from wninit.suite.train import RunConfig


def _pid_of_worker(cfg_dicts, execution, threads):
    return [{"pid": os.getpid(), "seed": c["seed"]} for c in cfg_dicts]


def test_local_pool_workers_are_recycled(monkeypatch):
    monkeypatch.setattr(runners, "RECYCLE_AFTER", 2)
    pool = runners.LocalPool(1)
    pool._task = _pid_of_worker  # what each group runs: report the worker's pid instead of training
    try:
        handles = [pool.submit([RunConfig(seed=s)]) for s in range(4)]
        done, deadline = {}, time.monotonic() + 120  # generous: two spawned processes on a loaded machine
        while len(done) < len(handles) and time.monotonic() < deadline:
            done.update(pool.wait(timeout=1.0))
    finally:
        pool.close()
    outcomes = [done[h] for h in handles]
    assert [o[0]["seed"] for o in outcomes] == list(range(4))  # every group ran, none lost
    pids = [o[0]["pid"] for o in outcomes]
    assert pids[0] == pids[1] != pids[2] == pids[3]
    assert os.getpid() not in pids and pool._retired == {}


def _sleep_then_pid(cfg_dicts, execution, threads):
    time.sleep(cfg_dicts[0]["seed"])  # seed = seconds to hold the worker
    return [{"pid": os.getpid(), "seed": c["seed"]} for c in cfg_dicts]


def test_a_group_submitted_after_a_worker_died_runs_on_fresh_processes():
    """A worker killed between two polls leaves its executor broken: the next submit must not raise
    (that crashed the driver with BrokenProcessPool), the dead generation's groups come back as lost, and the
    new group runs on a new process."""
    pool = runners.LocalPool(1)
    pool._task = _sleep_then_pid
    try:
        first = pool.submit([RunConfig(seed=60)])
        deadline = time.monotonic() + 120
        while not pool._pool._processes and time.monotonic() < deadline:
            time.sleep(0.05)
        (dead_pid,) = pool._pool._processes
        os.kill(dead_pid, 9)
        while not pool._pool._broken and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pool._pool._broken  # the executor saw its worker die, and no wait has run since
        second = pool.submit([RunConfig(seed=0)])
        done = {}
        while len(done) < 2 and time.monotonic() < deadline:
            done.update(pool.wait(timeout=1.0))
    finally:
        pool.close()
    assert done[first] == runners.Lost(runners._DIED)
    assert done[second][0]["seed"] == 0 and done[second][0]["pid"] not in (dead_pid, os.getpid())


def test_a_stacked_group_with_a_bad_member_says_so_and_trains_each_run_alone(monkeypatch):
    from wninit.suite.sweep import ensemble, worker

    def bad_member(cfgs):
        raise UserError("dataset 'cifar10' is not in ./data")

    monkeypatch.setattr(ensemble, "fit_ensemble", bad_member)
    monkeypatch.setattr(worker, "run_one", lambda c, execution, threads: {"seed": c["seed"], "alone": True})
    group = [RunConfig(seed=s).to_dict() for s in (1, 2)]
    with pytest.warns(RuntimeWarning, match=r"^a stacked group of 2 runs failed \(UserError: dataset 'cifar10' "
                                            r"is not in ./data\), so each of its runs trains alone$"):
        outcomes = worker.run_group(group)
    assert outcomes == [{"seed": 1, "alone": True}, {"seed": 2, "alone": True}]


def test_a_bug_of_the_stacked_engine_fails_every_member_with_its_traceback(monkeypatch, recwarn):
    from wninit.suite.sweep import ensemble, worker

    def broken(cfgs):
        raise RuntimeError("stacked shapes disagree")

    monkeypatch.setattr(ensemble, "fit_ensemble", broken)
    monkeypatch.setattr(worker, "run_one", lambda *a: pytest.fail("a bug must not be retried alone"))
    group = [RunConfig(seed=s).to_dict() for s in (1, 2)]
    outcomes = worker.run_group(group)
    assert [o["status"] for o in outcomes] == ["failed", "failed"] and not recwarn.list
    assert all(o["error"].startswith("RuntimeError: stacked shapes disagree\nTraceback") for o in outcomes)
    assert [o["run_id"] for o in outcomes] == [RunConfig(seed=s).run_id for s in (1, 2)]


def test_a_lone_config_that_cannot_be_stacked_says_it_trains_alone(monkeypatch):
    from wninit.suite.sweep import ensemble

    cnn = RunConfig(dataset="digits", arch="cnn", depth=2, width=8, epochs=1)
    monkeypatch.setattr(ensemble, "fit", lambda cfg: ("fit", cfg.run_id))
    with pytest.warns(UserWarning, match=f"^run {cnn.run_id} cannot be stacked .* so it trains alone through fit$"):
        assert ensemble.fit_ensemble([cnn]) == [("fit", cnn.run_id)]
