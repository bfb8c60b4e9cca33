"""Fuzzing of the CLI: bad ``train`` arguments and bad paths give exit 2 and one line, no traceback;
no case trains (``fit`` is replaced by a tripwire). Split from test_fuzz.py."""
import contextlib
import importlib
import io
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wninit.suite import cli
from wninit.suite.cli import main
from wninit.init.schemes import PLAIN_SCHEMES, WN_SCHEMES
from wninit.suite.train.config import ARCHS, DEVICES, NORMS, TASKS

from fuzz_common import DATASETS, SETTINGS, _report

# -- CLI arguments ------------------------------------------------------------------------------------
FILLER = [["--depth", "2"], ["--width", "8"], ["--epochs", "1"], ["--seed", "3"], ["--lr", "0.01"],
          ["--momentum", "0.5"], ["--no-progress"], ["--threads", "1"], ["--dataset", "synthetic"], ["--no-crop"]]
INT_FLAGS = ["--depth", "--width", "--k", "--batch-size", "--epochs", "--seed", "--cutout", "--hessian-iters",
             "--threads", "--mini-batch-size", "--schedule"]
FLOAT_FLAGS = ["--lr", "--momentum", "--weight-decay", "--warmup-epochs", "--warmup-lr", "--val-fraction",
               "--stem-gamma"]
OUT_OF_RANGE = {"--depth": st.integers(-50, 0), "--width": st.integers(-50, 0), "--epochs": st.just(0),
                "--seed": st.integers(-99, -1), "--schedule": st.integers(6, 99), "--threads": st.just(0),
                "--lr": st.floats(-10, 0), "--momentum": st.floats(1, 50), "--val-fraction": st.floats(1, 5),
                "--weight-decay": st.floats(-5, -1e-6), "--batch-size": st.just(0), "--cutout": st.integers(-20, -1)}
CHOICE_FLAGS = {"--dataset": DATASETS, "--arch": ARCHS, "--norm": NORMS, "--scheme": WN_SCHEMES + PLAIN_SCHEMES,
                "--task": TASKS, "--device": DEVICES, "--direction": ("orthogonal", "gaussian", "he")}
not_a_number = st.text(alphabet="abcdxyz#%,;", min_size=1, max_size=6)  # never inf/nan/1_0: no float() parses it


def _number_text(x) -> str:
    return repr(x) if isinstance(x, float) else str(x)


@st.composite
def bad_train_args(draw):
    kind = draw(st.sampled_from(["not a number", "out of range", "unknown choice", "missing value", "unknown flag",
                                 "stray value"]))
    if kind == "not a number":
        flag = draw(st.sampled_from(INT_FLAGS + FLOAT_FLAGS))
        bad, name = [flag, draw(not_a_number)], flag
    elif kind == "out of range":
        flag = draw(st.sampled_from(sorted(OUT_OF_RANGE)))
        bad, name = [f"{flag}={_number_text(draw(OUT_OF_RANGE[flag]))}"], flag[2:].replace("-", "_")
    elif kind == "unknown choice":
        flag = draw(st.sampled_from(sorted(CHOICE_FLAGS)))
        value = draw(st.text(alphabet=string.ascii_lowercase + "0123456789", min_size=1, max_size=8)
                     .filter(lambda v: v not in CHOICE_FLAGS[flag] + ("gaussian",)))
        bad, name = [flag, value], flag[2:]
    elif kind == "missing value":
        flag = draw(st.sampled_from(INT_FLAGS + FLOAT_FLAGS + sorted(CHOICE_FLAGS) + ["--out", "--config"]))
        return [a for f in draw(st.lists(st.sampled_from(FILLER), max_size=4)) for a in f] + [flag], flag
    elif kind == "unknown flag":
        flag = "--" + draw(st.sampled_from(["lrr", "depht", "epohcs", "learning-rate", "batchsize", "sed"]))
        bad, name = [flag, "1"], flag
    else:
        value = draw(st.text(alphabet=string.ascii_lowercase, min_size=1, max_size=6))
        bad, name = ["--no-progress", value], value
    # valid flags around it, never the bad flag again (the last one given would win)
    filler = [f for f in draw(st.lists(st.sampled_from(FILLER), max_size=4)) if not bad[0].startswith(f[0])]
    at = draw(st.integers(0, len(filler)))
    return [a for f in filler[:at] for a in f] + bad + [a for f in filler[at:] for a in f], name


@st.composite
def bad_path_args(draw, tmp):
    """sweep --dry-run / report / export with a path that is missing, a folder, or not what it should be."""
    what = draw(st.sampled_from(["missing", "folder", "garbage"]))
    path = {"missing": tmp / ("nope_" + draw(st.text(alphabet="abc123", min_size=1, max_size=8))),
            "folder": tmp / "folder", "garbage": tmp / "garbage.bin"}[what]
    command = draw(st.sampled_from(["sweep", "report", "export"]))
    if command == "sweep":
        argv = ["sweep", str(path), "--dry-run"] + draw(st.sampled_from([[], ["--profile", "quick"],
                                                                          ["--store", str(tmp / "s.db")]]))
    elif command == "report":
        argv = ["report", str(path), "--out", str(tmp / "report")]
    else:
        argv = ["export", str(path)] + draw(st.sampled_from([[], ["--format", "csv"], ["--out", str(tmp / "x.csv")]]))
    return argv, str(path)


def _cli(argv) -> tuple[int, str, str]:
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse's own errors exit through SystemExit(2)
            code = exc.code
    return code, out.getvalue(), err.getvalue()


def test_cli_fuzz(tmp_path, monkeypatch):
    fit_module = importlib.import_module("wninit.suite.train.single_run")  # the module the CLI imports fit from

    def tripwire(*a, **k):
        raise AssertionError("a fuzz case started training")

    monkeypatch.setattr(fit_module, "fit", tripwire)
    # one parser for all cases: main() builds the same one each call (16 ms, most of a case's time)
    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda argv=None: parser)
    (tmp_path / "folder").mkdir()
    (tmp_path / "garbage.bin").write_bytes(bytes(range(256)) * 4)
    counts: dict[str, int] = {}

    @SETTINGS
    @given(st.one_of(st.tuples(st.just("train"), bad_train_args()),
                     st.tuples(st.just("paths"), bad_path_args(tmp_path))))
    def case(c):
        kind, (argv, name) = c
        counts[kind] = counts.get(kind, 0) + 1
        if kind == "train":
            argv = ["train"] + argv
        code, out, err = _cli(argv)
        lines = err.strip().splitlines()
        assert code == 2, (argv, code, out, err)
        assert len(lines) == 1 and lines[0].startswith("wninit: error:"), (argv, err)
        assert "Traceback" not in err + out, argv
        if kind == "train":
            assert name in lines[0], (argv, lines[0])

    case()
    # a failed command leaves nothing behind: no store created, no report folder, no CSV
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder", "garbage.bin"]
    assert (tmp_path / "garbage.bin").read_bytes() == bytes(range(256)) * 4 and not any((tmp_path / "folder").iterdir())
    _report("CLI", counts)


@pytest.mark.parametrize("flag", ["--dept", "--epoch", "--mom"])
def test_flag_prefixes_are_not_accepted(flag, monkeypatch, capsys):
    """A typo'd prefix of a flag is an error, never silently another flag."""
    monkeypatch.setattr(importlib.import_module("wninit.suite.train.single_run"), "fit", lambda *a, **k: pytest.fail("trained"))
    with pytest.raises(SystemExit) as e:
        main(["train", flag, "1", "--dataset", "synthetic"])
    assert e.value.code == 2 and "unrecognized arguments" in capsys.readouterr().err
