"""wninit reproduce end to end on a tiny stand-in spec (the real quick profiles take minutes: README): Figure 1,
the sweep through the process pool into DIR/store.db, the report and the claims table; a rerun continues
without training again; bad input is one sentence and exit 2."""
import functools
from pathlib import Path

import pytest

from wninit.suite.cli import main
from wninit.diagnostics import synthetic
from wninit.suite.sweep.store import Store
from tiny_specs import tiny_spec

# The stand-in filed under the name of the MLP depth experiment, whose claim (5) the report then judges.
TINY_SPEC = tiny_spec("fig2_mlp_depth", """
    [grid]
    depth = [1, 2]
    scheme = ["proposed", "datadep"]
    seed = [1, 2]
    [profiles.quick]
    [profiles.paper]
""", title="test stand-in for Figure 2 (left)")


@pytest.fixture
def experiments(tmp_path, monkeypatch):
    folder = tmp_path / "experiments"
    folder.mkdir()
    (folder / "fig2_mlp_depth.toml").write_text(TINY_SPEC)
    # Figure 1 at full size is ~40 CPU-seconds of numpy; the pipeline is what is tested here.
    monkeypatch.setattr(synthetic, "figure1", functools.partial(synthetic.figure1, widths=(60, 100), n_in=40,
                                                                layers=20, blocks=40, samples=50))
    return folder


def test_reproduce_end_to_end_and_resume(tmp_path, experiments, capsys):
    out = tmp_path / "out"
    argv = ["reproduce", "--out", str(out), "--experiments", str(experiments), "--specs", "fig2_mlp_depth",
            "--workers", "1", "--no-progress"]
    assert main(argv) == 0
    printed = capsys.readouterr()
    for name in ("figure1.csv", "figure1.png", "report.md", "claims.md", "fig2_mlp_depth-quick.png", "store.db"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert "verdict" in printed.out and f"report: {out / 'report.md'}" in printed.out
    assert " 5  " in printed.out and "Fig. 2 MLP depth" in printed.out  # claim 5 judged on the run
    with Store(out / "store.db") as store:
        first = {r.id: (r.status, r.finished_at) for r in store.runs()}
    assert len(first) == 8 and all(s in ("completed", "diverged") for s, _ in first.values())

    assert main(argv) == 0  # resumable: the rerun finds every run finished and trains none
    again = capsys.readouterr()
    assert "8 already in" in again.err and "this call trained 0" in again.err
    with Store(out / "store.db") as store:
        assert {r.id: (r.status, r.finished_at) for r in store.runs()} == first
        machine = f"Made on: {store.runs()[0].cpu}, kernels {store.runs()[0].isa} (8 runs)."
    assert machine in again.out and machine in (out / "claims.md").read_text()


def test_reproduce_portable_refuses_a_store_of_native_runs(tmp_path, experiments, capfd):
    """--portable runs other run ids: one report must not mix them with the native runs already stored."""
    out = tmp_path / "out"
    argv = ["reproduce", "--out", str(out), "--experiments", str(experiments), "--specs", "fig2_mlp_depth",
            "--workers", "1", "--no-progress", "--limit", "1"]
    assert main(argv) == 0
    capfd.readouterr()
    assert main([*argv, "--portable"]) == 2  # said by the pinned child process
    assert "already holds fig2_mlp_depth runs that are not portable; pass another --out" in capfd.readouterr().err


@pytest.mark.parametrize("extra, needle", [
    (["--workers", "0"], "--workers must be at least 1"),
    (["--specs", "nope"], "no experiment spec"),
    (["--experiments", "/nonexistent/experiments"], "cannot find the experiment specs"),
])
def test_reproduce_bad_input_is_one_sentence(tmp_path, experiments, capsys, extra, needle):
    argv = ["reproduce", "--out", str(tmp_path / "o"), "--experiments", str(experiments), *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0], err


def test_reproduce_out_that_is_a_file(tmp_path, experiments, capsys):
    target = tmp_path / "taken"
    target.write_text("")
    assert main(["reproduce", "--out", str(target), "--experiments", str(experiments), "--specs", "fig2_mlp_depth"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is a file" in err[0], err


def test_the_specs_ship_with_the_package_and_sweep_finds_them_by_name(tmp_path, monkeypatch, capsys):
    import wninit
    from wninit.suite.experiments import find_experiments

    monkeypatch.chdir(tmp_path)  # no ./experiments here: the installed specs are found
    folder = find_experiments()
    assert folder == Path(wninit.__file__).parent / "experiments"
    assert {p.stem for p in folder.glob("*.toml")} >= {"fig2_mlp_depth", "fig2_mlp_hparams", "fig2_cnn_depth",
                                                      "fig3_depth_10k", "fig3_lr_warmup", "table1_wn_vs_bn",
                                                      "table2_hessian"}
    assert main(["sweep", "fig2_mlp_depth", "--profile", "quick", "--dry-run"]) == 0
    assert "fig2_mlp_depth (profile quick): 120 runs" in capsys.readouterr().out
