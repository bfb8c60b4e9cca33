"""Every script in examples/ runs as a user would run it (a fresh process, its own folder), within its minute on
one CPU thread, and shows what its docstring says it shows."""
import csv
import os
import re
import resource
import subprocess
import sys
from pathlib import Path

import wninit

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
MINUTE_S = 60


def _run(name: str, cwd: Path) -> str:
    src = str(Path(wninit.__file__).parents[1])
    env = dict(os.environ, OMP_NUM_THREADS="1", MPLBACKEND="Agg",  # CI's -n 2: one thread per test process
               PYTHONPATH=os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]))
    # its minute is CPU time (one thread: the same as wall time on an idle core), which a loaded machine does
    # not stretch; the wall-clock timeout only catches a hang
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run([sys.executable, str(EXAMPLES / name)], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=10 * MINUTE_S)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    assert done.returncode == 0, f"{name} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert cpu < MINUTE_S, f"{name} took {cpu:.0f} s of CPU, more than its minute"
    return done.stdout


def _number(pattern: str, text: str) -> float:
    match = re.search(pattern, text)
    assert match, f"no {pattern!r} in:\n{text}"
    return float(match.group(1))


def test_every_example_has_a_test():
    tested = {"train_wn_resnet.py", "convert_bn_model.py", "diagnose_model.py", "proposed_vs_datadep.py",
              "small_sweep.py"}
    assert {p.name for p in EXAMPLES.glob("*.py")} == tested


def test_train_wn_resnet_learns(tmp_path):
    out = _run("train_wn_resnet.py", tmp_path)
    assert "role='block_out'" in out and "gamma=0.25" in out  # 1/B_k with B_k = 4 blocks
    assert _number(r"test accuracy (\S+)", out) > 0.6  # chance is 0.1


def test_convert_bn_model_leaves_no_batchnorm_and_trains(tmp_path):
    out = _run("convert_bn_model.py", tmp_path)
    assert "weight-normalized layers: 4, BatchNorm layers left: 0" in out
    assert _number(r"converted WN (\S+)", out) > 0.6


def test_diagnose_model_writes_its_plot_and_shows_the_default_init_vanishing(tmp_path):
    out = _run("diagnose_model.py", tmp_path)
    assert (tmp_path / "propagation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len((tmp_path / "propagation.csv").read_text().splitlines()) == 1 + 30  # header + one row per layer
    proposed = _number(r"proposed: at layer 30, forward (\S+),", out)
    default = _number(r"pytorch-default: at layer 30, forward (\S+),", out)
    assert 0.3 < proposed < 3 and default < 1e-3  # held vs vanished after 30 layers
    # its docstring's numbers (per position; fixed seeds): forward 2.3-3.2 at every layer, backward 0.8-1.05
    rows = list(csv.DictReader((tmp_path / "propagation.csv").open()))
    forward = [float(r["forward_position_mean"]) for r in rows]
    backward = [float(r["backward_position_mean"]) for r in rows]
    assert all(2.3 <= f <= 3.2 for f in forward) and all(0.8 <= b <= 1.05 for b in backward)
    assert 1e-5 < default < 1e-4


def test_proposed_vs_datadep_trains_the_proposed_run(tmp_path):
    out = _run("proposed_vs_datadep.py", tmp_path)
    assert _number(r"proposed: .*test accuracy (\S+)", out) > 0.3
    assert re.search(r"datadep: (diverged|validation accuracy)", out)


def test_small_sweep_reports_and_resumes(tmp_path):
    out = _run("small_sweep.py", tmp_path)
    assert "8 runs, 8 new" in out and "trained 8 runs" in out
    report = (tmp_path / "report" / "report.md").read_text()
    for config in ("depth=4, scheme=proposed", "depth=16, scheme=pytorch-default"):
        assert f"| {config} | " in report
    again = _run("small_sweep.py", tmp_path)
    assert "8 runs, 0 new" in again and "trained 0 runs" in again
