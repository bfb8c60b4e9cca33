"""`--backend ray` on a local Ray instance started by the test: the same tiny sweep gives the same stored
metrics as the local process pool. Every wait is bounded (an alarm fails the test instead of hanging)."""
import signal

import pytest

from wninit.suite.sweep import Store, load_spec, run_sweep
from tiny_specs import tiny_spec

SPEC = tiny_spec("tiny_ray", """
    lr = 0.05
    [grid]
    scheme = ["proposed", "datadep"]
    seed = [1, 2]
    [profiles.quick]
""")
BOUND_S = 240


def _timeout(signum, frame):
    raise TimeoutError(f"the Ray test took more than {BOUND_S} s")


@pytest.fixture
def local_ray():
    import ray  # the `ray` extra; CI installs it with the test extras
    old = signal.signal(signal.SIGALRM, _timeout)
    signal.alarm(BOUND_S)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _sweep(tmp_path, name, backend):
    spec = tmp_path / "tiny.toml"
    spec.write_text(SPEC)
    exp = load_spec(spec, "quick")
    with Store(tmp_path / f"{name}.db") as store:
        store.add(exp.name, exp.profile, exp.runs)
        summary = run_sweep(store, [(exp.name, exp.profile)], backend=backend, workers=2, progress=False)
        assert summary.executed == 4 and summary.counts["completed"] == 4
        return {r.id: (r.status, r.metrics, store.epochs(r.id), r.threads) for r in store.runs()}


def test_ray_backend_gives_the_local_results(tmp_path, local_ray):
    on_ray = _sweep(tmp_path, "ray", "ray")
    assert local_ray.is_initialized()  # the test's instance was used (and is left for the test to stop)
    local = _sweep(tmp_path, "local", "local")
    assert on_ray == local  # same ids, statuses, metrics, epochs, and one thread per run on both
