"""Portable mode and the machine record (docs/reproducibility.md).

A portable run is bit for bit the same whatever instruction set the machine offers: shown here by forcing a
lower one on this machine (ATen without AVX, oneDNN at SSE4.1, MKL's dispatch at SSE4.2) in a fresh process,
since the libraries read their choice once when they load. Every stored run names the CPU and the instruction
set its kernels used, and the report says which machines made it."""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from wninit.errors import UserError
from wninit.suite.cli import main
from wninit.suite.sweep import Store
from wninit.suite.train import RunConfig, fit
from wninit.suite.train import portable
from wninit.suite.train.runtime import cpu_model, kernel_isa
from tiny_specs import tiny_spec

FORCED = {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2"}
TRAIN = ["train", "--dataset", "digits", "--arch", "mlp", "--depth", "4", "--width", "32", "--epochs", "2",
         "--lr", "0.05", "--momentum", "0.9", "--threads", "1", "--portable"]
SRC = str(Path(__file__).resolve().parents[1] / "src")
needs_avx2 = pytest.mark.skipif(not torch.cpu._is_avx2_supported(), reason="portable mode pins AVX2; this CPU lacks it")


def _unpinned_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in (*portable.ENV, *FORCED)}
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")  # this checkout's wninit in the child
    return {**env, **extra}


def _result(out: Path) -> dict:
    return json.loads((out / "result.json").read_text())


@needs_avx2
def test_a_portable_run_is_bit_identical_with_a_lower_instruction_set_forced(tmp_path):
    """`wninit train --portable` starts itself again pinned; the same command in a process whose machine offers
    less (FORCED) gives the same epochs and metrics, bit for bit, and both record the pinned ISA."""
    native, forced = tmp_path / "native", tmp_path / "forced"
    assert main([*TRAIN, "--out", str(native)]) == 0
    done = subprocess.run([sys.executable, "-m", "wninit", *TRAIN, "--out", str(forced)], env=_unpinned_env(**FORCED),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    a, b = _result(native), _result(forced)
    assert a["config"]["portable"] is True and a["env"]["isa"] == b["env"]["isa"] == portable.ISA
    assert a["epochs"] == b["epochs"] and a["test_acc"] == b["test_acc"]


def test_without_the_pin_the_forced_process_uses_the_lower_instruction_set(tmp_path):
    """What the pin overrides: unpinned, the forced process's kernels are ATen's DEFAULT ones (so a result there
    is allowed to differ; wninit.suite.bench.portable shows by how much)."""
    code = "from wninit.suite.train.runtime import kernel_isa; print(kernel_isa())"
    done = subprocess.run([sys.executable, "-c", code], env=_unpinned_env(**FORCED), capture_output=True, text=True,
                          timeout=120)
    assert done.stdout.strip() == "DEFAULT", done.stderr


def test_a_portable_run_needs_a_pinned_process_and_a_pinned_process_portable_runs():
    cfg = RunConfig(dataset="digits", arch="mlp", depth=2, width=8, epochs=1, threads=1)
    with pytest.raises(UserError, match="this run is portable but this process's kernels are not pinned"):
        fit(cfg.replace(portable=True))
    assert cfg.replace(portable=True).run_id != cfg.run_id  # it changes results, so it is a different run
    assert "portable" not in cfg.result_fields()  # off: every id stored before the option stays as it was


def test_the_kernel_scope_gives_the_callers_flags_back():
    def flags():
        return (torch.backends.mkldnn.enabled, torch._C._get_nnpack_enabled(),
                torch.are_deterministic_algorithms_enabled())

    before = flags()
    with portable.kernel_scope(True):
        assert flags() == (False, False, True)
    assert flags() == before


SWEEP = tiny_spec("pinned", """
    lr = 0.05
    seed = 1
    portable = true
    [profiles.quick]
""")


@pytest.mark.slow  # three processes: a sweep, a pinned rerun, the report
@needs_avx2
def test_a_stored_portable_run_names_its_machine_and_reruns_pinned(tmp_path, capsys):
    """A sweep of a portable run in a pinned process stores the CPU and the pinned ISA; `wninit rerun` pins its
    own process again (it would refuse the run otherwise) and says identical; the report names the machine."""
    spec, db = tmp_path / "pinned.toml", tmp_path / "s.db"
    spec.write_text(SWEEP)
    done = subprocess.run([sys.executable, "-m", "wninit", "sweep", str(spec), "--store", str(db), "--workers", "1",
                           "--no-progress"], env=portable.pinned_env(_unpinned_env()), capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    with Store(db) as store:
        (rec,) = store.runs()
    assert rec.status == "completed" and rec.config.portable
    assert (rec.cpu, rec.isa, rec.gpu) == (cpu_model(), portable.ISA, None)
    assert main(["rerun", rec.id, "--store", str(db)]) == 0
    assert main(["report", str(db), "--out", str(tmp_path / "rep")]) == 0
    claims = (tmp_path / "rep" / "claims.md").read_text()
    assert f"Made on: {cpu_model()}, kernels {portable.ISA}, portable (1 runs)." in claims


def test_a_native_run_records_the_instruction_set_it_used():
    r = fit(RunConfig(dataset="digits", arch="mlp", depth=2, width=8, epochs=1, threads=1))
    assert (r.env["cpu"], r.env["isa"], r.env["gpu"]) == (cpu_model(), kernel_isa(), None)
    assert r.env["isa"] == torch.backends.cpu.get_cpu_capability()


SAME_AS_TRAIN = textwrap.dedent("""
    [experiment]
    name = "as_train"
    [base]
    dataset = "digits"
    arch = "mlp"
    depth = 4
    width = 32
    epochs = 2
    lr = 0.05
    momentum = 0.9
    threads = 1  # as TRAIN's --threads 1: MKL's sums depend on the thread count (docs/reproducibility.md)
    [profiles.quick]
""")


@pytest.mark.slow  # a pinned train and a pinned sweep, each its own process
@needs_avx2
def test_a_portable_sweep_records_portable_and_equals_train_portable(tmp_path, capfd):
    """`wninit sweep --portable` means what `wninit train --portable` means: the same run id, trained pinned (its
    process started again with the pin), stored as portable with the pinned ISA, and bit for bit the result of
    the train command; a native sweep then refuses that store (one report, one kind of kernel)."""
    spec, db, out = tmp_path / "as_train.toml", tmp_path / "s.db", tmp_path / "train"
    spec.write_text(SAME_AS_TRAIN)
    assert main([*TRAIN, "--out", str(out)]) == 0
    assert main(["sweep", str(spec), "--store", str(db), "--workers", "1", "--no-progress", "--portable"]) == 0
    trained = _result(out)
    with Store(db) as store:
        (rec,) = store.runs()
        epochs = store.epochs(rec.id)
    assert rec.status == "completed" and rec.config.portable and rec.isa == portable.ISA
    assert rec.id == RunConfig.from_dict(trained["config"]).run_id
    assert rec.metrics["test_acc"] == trained["test_acc"]
    assert [row["train_loss"] for row in epochs] == [row["train_loss"] for row in trained["epochs"]]
    capfd.readouterr()
    assert main(["sweep", str(spec), "--store", str(db), "--workers", "1", "--no-progress"]) == 2
    assert "already holds as_train runs that are not native; pass another --store" in capfd.readouterr().err


def test_a_sweep_that_mixes_portable_and_native_runs_is_one_sentence(tmp_path, capsys):
    spec = tmp_path / "mixed.toml"
    spec.write_text(tiny_spec("mixed", """
        lr = 0.05
        [[series]]
        name = "pinned"
        portable = true
        [[series]]
        name = "native"
        [profiles.quick]
    """))
    assert main(["sweep", str(spec), "--store", str(tmp_path / "s.db"), "--no-progress"]) == 2
    assert "some runs of mixed are portable and some are not" in capsys.readouterr().err
