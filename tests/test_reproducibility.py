"""Reproducibility: same config, same machine -> bitwise-identical metrics on CPU, for each kind
of network (test_fit.py shows it for the MLP on mnist5k); every stored run records the wninit version,
torch version, device and seed; ``wninit rerun RUN_ID`` reproduces a completed and a diverged run and
says identical."""

import pytest
import torch

import wninit
from wninit.suite.cli import main
from wninit.suite.sweep import Store, load_spec
from wninit.suite.train import RunConfig, fit
from tiny_specs import tiny_spec

KINDS = {  # one epoch each on 8x8 digits: the conv paths (padding, pooling, BN, residuals) too
    "mlp-datadep-gaussian": RunConfig(dataset="digits", arch="mlp", depth=3, width=16, scheme="datadep",
                                      direction="gaussian", lr=0.01, momentum=0.9, epochs=2, threads=1),
    "cnn-wn": RunConfig(dataset="digits", arch="cnn", depth=2, width=8, lr=0.01, momentum=0.9, epochs=1, threads=1),
    "resnet-bn": RunConfig(dataset="digits", arch="resnet", depth=8, width=4, norm="bn", scheme="he", lr=0.01,
                           momentum=0.9, weight_decay=5e-4, epochs=1, threads=1),
    "wrn-wn-warmup": RunConfig(dataset="digits", arch="wrn", depth=10, k=1, lr=0.01, momentum=0.9, epochs=2,
                               warmup_epochs=1.0, threads=1),
}


@pytest.mark.parametrize("name", sorted(KINDS))
def test_same_config_twice_is_bitwise_identical(name):
    cfg = KINDS[name]
    a, b = fit(cfg), fit(cfg)
    assert a.status == b.status
    assert a.metrics() == b.metrics()  # floats compared with ==: bit for bit
    assert a.epochs == b.epochs and len(a.epochs) == cfg.epochs  # every epoch's losses and accuracies
    assert a.run_id == b.run_id == cfg.run_id


SPEC = tiny_spec("repro", """
    [grid]   # lr 1e6 diverges: a diverged run is a result and must reproduce too
    run = [{ seed = 5, lr = 0.05 }, { seed = 6, lr = 1e6 }]
    [profiles.quick]
""")


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """One tiny sweep (a completed and a diverged run) shared by the tests below: (spec, store path)."""
    folder = tmp_path_factory.mktemp("repro")
    spec, db = folder / "repro.toml", folder / "s.db"
    spec.write_text(SPEC)
    assert main(["sweep", str(spec), "--store", str(db), "--workers", "1", "--no-progress"]) == 0
    return spec, db


def test_stored_runs_record_their_environment_and_rerun_identically(swept, capsys):
    spec, db = swept
    exp = load_spec(spec, "quick")
    with Store(db) as store:
        recs = {r.id: r for r in store.runs("repro", "quick")}
        cols = {row["id"]: dict(row) for row in store.conn.execute(
            "SELECT id, wninit_version, torch_version, device, seed, threads, host, status FROM runs")}
    assert sorted(recs) == sorted(exp.ids) and len(recs) == 2
    for cfg in exp.runs:
        row = cols[cfg.run_id]
        # the columns themselves, not just the record: what a later reader of the store file sees
        assert row["wninit_version"] == wninit.__version__ and row["torch_version"] == torch.__version__
        assert row["device"] == "cpu" and row["seed"] == cfg.seed and row["threads"] >= 1 and row["host"]
        assert row["status"] == ("diverged" if cfg.lr == 1e6 else "completed")
        assert recs[cfg.run_id].config == cfg.resolved()
    for status in ("completed", "diverged"):
        rec = next(r for r in recs.values() if r.status == status)
        assert main(["rerun", rec.id[:8], "--store", str(db)]) == 0  # a unique prefix names the run
        out = capsys.readouterr().out
        assert f"rerunning {rec.id}" in out and f"wninit {wninit.__version__}, torch {torch.__version__}, cpu" in out
        assert "identical: every metric and every epoch row equals the stored run" in out
        assert "different" not in out


def test_rerun_says_different_when_the_stored_metrics_differ(swept, tmp_path, capsys):
    """The comparison is real: a stored metric changed by one ulp is reported, exit 1."""
    import json
    import math
    import shutil

    db = tmp_path / "copy.db"
    shutil.copy(swept[1], db)  # the shared store stays as swept
    with Store(db) as store:
        rec = next(r for r in store.runs() if r.status == "completed")
        metrics = dict(rec.metrics, best_val_acc=math.nextafter(rec.metrics["best_val_acc"], 2.0))
        with store.transaction() as conn:
            conn.execute("UPDATE runs SET metrics=? WHERE id=?", (json.dumps(metrics), rec.id))
    capsys.readouterr()
    assert main(["rerun", rec.id, "--store", str(db)]) == 1
    out = capsys.readouterr().out
    assert "different (1 values)" in out and "best_val_acc" in out
