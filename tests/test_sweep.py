"""`wninit sweep` end to end on a tiny spec: every run lands once with the metrics of a standalone ``fit``;
a worker exception marks that run failed with its error text and the sweep goes on; NaN is diverged; a
rerun runs nothing; --limit, --dry-run, export and rerun. (The fault and concurrency tests are in
test_sweep_faults.py.)"""

import torch

from wninit.suite.cli import main
from wninit.suite.sweep import Store, load_spec
from wninit.suite.train import fit
from tiny_specs import tiny_spec

TINY = tiny_spec("tiny", """
    lr = 0.05
    [grid]
    scheme = ["proposed", "datadep"]
    seed = [1, 2]
    [[series]]
    name = "ok"
    [[series]]
    name = "nan"
    lr = 1e6
    seed = 3
    [[series]]
    name = "broken"
    batch_size = 5000   # larger than the 922-sample training split: fit raises inside the worker
    seed = 4
    [profiles.quick]
    [profiles.paper]
""", title="test")


def _spec(tmp_path, text=TINY):
    path = tmp_path / "tiny.toml"
    path.write_text(text)
    return path


def test_sweep_stores_every_run_once_and_goes_on_after_a_failure(tmp_path, capsys):
    spec, db = _spec(tmp_path), tmp_path / "s.db"
    code = main(["sweep", str(spec), "--store", str(db), "--workers", "2"])
    out = capsys.readouterr()
    assert code == 1  # finished, with a failed run
    exp = load_spec(spec, "quick")
    with Store(db) as store:
        recs = {r.id: r for r in store.runs("tiny", "quick")}
        assert sorted(recs) == sorted(exp.ids) and len(recs) == 8
        by_series = {}
        for cfg in exp.runs:
            by_series.setdefault("broken" if cfg.batch_size == 5000 else "nan" if cfg.lr == 1e6 else "ok",
                                 []).append(recs[cfg.run_id])
        assert {r.status for r in by_series["ok"]} == {"completed"}
        assert {r.status for r in by_series["nan"]} == {"diverged"}
        assert all(r.metrics["diverged_at"]["epoch"] == 0 and r.metrics["test_acc"] is None for r in by_series["nan"])
        broken = by_series["broken"]
        assert {r.status for r in broken} == {"failed"}
        assert all(r.error.startswith("UserError: batch_size 5000 is larger") for r in broken)
        assert "failed" in out.out and "batch_size 5000" in out.out
        # the stored metrics are those of a standalone fit with the worker's thread count (1 of 2 workers)
        ok = by_series["ok"][0]
        alone = fit(ok.config.replace(threads=1))
        assert ok.metrics["test_acc"] == alone.test_acc and ok.metrics["best_val_acc"] == alone.best_val_acc
        assert store.epochs(ok.id) == alone.epochs
        assert ok.threads == 1 and ok.torch_version == torch.__version__ and ok.attempts == 1 and ok.host
        # which code made the result: this checkout's commit and dirty flag (git rev-parse HEAD in test_runtime.py)
        from wninit.suite.train.runtime import code_version
        assert (ok.code_commit, ok.code_dirty) == (code_version()["commit"], code_version()["dirty"])
        assert ok.code_commit is not None and len(ok.code_commit) == 40
    # rerunning the same command runs nothing (failed runs stay failed unless --retry-failed)
    assert main(["sweep", str(spec), "--store", str(db), "--no-progress"]) == 0
    assert "this call ran 0" in capsys.readouterr().out
    # rerun: same config, same machine -> identical metrics
    assert main(["rerun", ok.id, "--store", str(db)]) == 0
    assert "identical" in capsys.readouterr().out


def test_limit_then_continue_and_dry_run(tmp_path, capsys):
    spec, db = _spec(tmp_path), tmp_path / "s.db"
    assert main(["sweep", str(spec), "--store", str(db), "--workers", "1", "--limit", "2", "--no-progress"]) == 0
    with Store(db) as store:
        assert store.counts("tiny") == {"pending": 6, "running": 0, "completed": 2, "diverged": 0, "failed": 0}
    capsys.readouterr()
    assert main(["sweep", str(spec), "--store", str(db), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "tiny (profile quick): 8 runs" in out and "2 of them are already finished" in out
    assert "seed" in out and "nothing was trained" in out
    assert main(["export", str(db), "--out", str(tmp_path / "r.csv")]) == 0
    assert "wrote 8 runs" in capsys.readouterr().out


def test_bad_cli_input_is_one_sentence_and_exit_2(tmp_path, capsys):
    spec = _spec(tmp_path)
    Store(tmp_path / "empty.db").close()  # a real store with no runs
    for argv, needle in [
        (["sweep", str(spec), "--profile", "huge", "--dry-run"], "profile 'huge' is not in"),
        (["sweep", str(spec)], "--store"),
        (["sweep", str(spec), "--store", str(tmp_path / "s.db"), "--workers", "0"], "--workers"),
        (["rerun", "abc", "--store", str(tmp_path / "empty.db")], "no run"),
        (["rerun", "abc", "--store", str(tmp_path / "missing.db")], "does not exist, not a wninit store"),
    ]:
        assert main(argv) == 2, argv
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and needle in lines[0], (argv, lines)


def test_a_sweep_of_a_shrunk_grid_reuses_its_runs_and_reports_only_what_it_asks_for(tmp_path, capsys):
    spec, db = _spec(tmp_path), tmp_path / "s.db"
    assert main(["sweep", str(spec), "--store", str(db), "--workers", "1", "--limit", "2", "--no-progress"]) == 0
    shrunk = _spec(tmp_path, TINY.replace("seed = [1, 2]", "seed = [1]"))  # the "ok" series loses seed 2
    assert main(["sweep", str(shrunk), "--store", str(db), "--workers", "1", "--limit", "1", "--no-progress"]) == 0
    assert "tiny (profile quick): 6 runs, 0 new, 6 already in" in capsys.readouterr().out
    with Store(db) as store:
        asked = store.runs("tiny", "quick")
        assert len(asked) == 6 and {r.config.seed for r in asked if r.config.lr == 0.05 and r.config.batch_size != 5000} == {1}
        assert store.conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 8  # the dropped runs stay stored
