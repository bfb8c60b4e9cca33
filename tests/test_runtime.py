"""train/runtime.py and the run protocol's scoping: a run leaves the caller's global RNG and torch thread count
as it found them, keeps the reference's seeding inside, and records the commit of the code that made it."""
import importlib.util
import inspect
import subprocess
from pathlib import Path

import pytest
import torch

import wninit
from wninit.suite.sweep.stacked import run_group
from wninit.suite.train import RunConfig, fit
from wninit.suite.train import runtime

TINY = RunConfig(dataset="digits", depth=2, width=16, epochs=1, lr=0.02, momentum=0.9, batch_size=64, threads=1)


@pytest.fixture
def caller_state():
    """A caller with 3 torch threads (not the runs' 1) and a global RNG seeded with 1234 (not a run's seed)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(3)
    torch.manual_seed(1234)
    try:
        yield torch.get_rng_state()
    finally:
        torch.set_num_threads(threads)


def test_fit_leaves_the_global_rng_and_thread_count_as_found(caller_state):
    first = fit(TINY)  # seeds the global stream (the plain head's default init) and runs on 1 thread
    assert torch.equal(torch.get_rng_state(), caller_state) and torch.get_num_threads() == 3
    assert first.env["threads"] == 1
    # the numbers stay the reference's: the run seeds its own stream, whatever the caller's
    torch.manual_seed(99)
    assert fit(TINY).metrics() == first.metrics()


def test_run_group_leaves_the_global_rng_and_thread_count_as_found(caller_state):
    results = run_group([TINY.replace(seed=s).resolved() for s in (1, 2)])
    assert torch.equal(torch.get_rng_state(), caller_state) and torch.get_num_threads() == 3
    assert [r.env["threads"] for r in results] == [1, 1]


def test_a_hessian_task_leaves_the_global_rng_as_found(caller_state, monkeypatch):
    import wninit.diagnostics.hessian as hessian_module

    monkeypatch.setattr(hessian_module, "hessian_spectral_norm", lambda *a, **k: 2.0)
    assert fit(TINY.replace(task="hessian")).status == "completed"
    assert torch.equal(torch.get_rng_state(), caller_state) and torch.get_num_threads() == 3


def test_set_seed_is_torch_manual_seed_on_the_cpu_stream():
    with runtime.rng_scope(torch.device("cpu")):
        runtime.set_seed(7, torch.device("cpu"))
        ours = torch.rand(5)
        torch.manual_seed(7)
        assert torch.equal(ours, torch.rand(5))


def test_the_module_is_single_run_and_wninit_train_fit_is_only_the_function():
    assert inspect.isfunction(wninit.suite.train.fit) and wninit.suite.train.fit.__module__ == "wninit.suite.train.single_run"
    assert importlib.util.find_spec("wninit.suite.train.fit") is None


def _git(*args, cwd):
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()


def test_the_run_record_names_the_commit_of_this_checkout():
    package = Path(wninit.__file__).resolve().parent
    env = fit(TINY.replace(task="hessian", hessian_iters=1)).env
    assert env["commit"] == _git("rev-parse", "HEAD", cwd=package) and len(env["commit"]) == 40
    assert env["dirty"] == (_git("status", "--porcelain", "--", ".", cwd=package) != "")
    assert runtime.code_version() is runtime.code_version()  # computed once per process


def test_commit_and_dirty_flag_of_a_checkout_and_of_no_checkout(tmp_path, monkeypatch):
    package = tmp_path / "src" / "wninit"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("x = 1\n")
    assert runtime._checkout_version(package) == {"commit": None, "dirty": None}  # not in a repository
    _git("init", "-q", cwd=tmp_path)
    assert runtime._checkout_version(package) == {"commit": None, "dirty": None}  # in one, but not tracked
    _git("add", ".", cwd=tmp_path)
    _git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one", cwd=tmp_path)
    head = _git("rev-parse", "HEAD", cwd=tmp_path)
    assert runtime._checkout_version(package) == {"commit": head, "dirty": False}
    (tmp_path / "notes.txt").write_text("outside the package: the code is still the commit's\n")
    assert runtime._checkout_version(package) == {"commit": head, "dirty": False}
    (package / "__init__.py").write_text("x = 2\n")
    assert runtime._checkout_version(package) == {"commit": head, "dirty": True}
    monkeypatch.setenv("PATH", "")  # no git at all: None, never an error
    assert runtime._checkout_version(package) == {"commit": None, "dirty": None}
