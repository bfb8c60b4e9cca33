"""The CLI's error contract: a user's error (UserError, OSError) is one sentence and exit 2; anything else, a
bare ValueError included, is a bug: its traceback and exit 1."""
import re
from pathlib import Path

import pytest

import wninit
from wninit.suite.cli import main
from wninit.errors import UserError


def _boom(*args, **kwargs):
    raise ValueError("boom inside the library")


def test_a_user_error_is_one_sentence_and_exit_2(tmp_path, capsys):
    assert main(["sweep", str(tmp_path / "missing.toml"), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("wninit: error: experiment spec") and "does not exist" in err
    assert "Traceback" not in err


def test_an_os_error_is_one_sentence_and_exit_2(tmp_path, capsys, monkeypatch):
    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(tmp_path / "x.toml"))

    monkeypatch.setattr("wninit.suite.sweep.spec.load_spec", denied)
    assert main(["sweep", str(tmp_path / "x.toml"), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Permission denied" in err and "x.toml" in err and "Traceback" not in err


# A full disk is the user's to free (tests/test_storage_faults.py: one sentence, exit 2); an I/O error is not.
@pytest.mark.parametrize("error", [OSError(5, "Input/output error"), ConnectionResetError(104, "Connection reset by peer")])
def test_an_os_error_that_is_not_the_users_is_a_traceback_and_exit_1(tmp_path, capsys, monkeypatch, error):
    def fails(*args, **kwargs):
        raise error

    monkeypatch.setattr("wninit.suite.sweep.spec.load_spec", fails)
    assert main(["sweep", str(tmp_path / "x.toml"), "--dry-run"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):") and error.strerror in err
    assert "wninit: internal error" in err.splitlines()[-1]


def test_an_internal_value_error_is_a_traceback_and_exit_1(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("wninit.suite.sweep.spec.load_spec", _boom)
    assert main(["sweep", str(tmp_path / "x.toml"), "--dry-run"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):") and "in _boom" in err
    assert "ValueError: boom inside the library" in err and "wninit: internal error" in err.splitlines()[-1]


def test_a_library_argument_error_is_a_user_error():
    """Bad arguments to the library are UserErrors (still ValueErrors for library callers)."""
    from torch import nn

    with pytest.raises(UserError, match="unknown scheme"):
        wninit.initialize(nn.Sequential(nn.Linear(2, 2)), "nonsense")
    assert issubclass(UserError, ValueError)


# The only bare ValueErrors left in src/: broken internal invariants, never a user's input.
INTERNAL_VALUE_ERRORS = {
    "suite/sweep/stacked.py": "StackedMLP stacks MLPs",  # batchable_groups only forms valid groups
    "suite/sweep/leases.py": "finish() takes a completed or diverged outcome",  # the driver passes only those
    # the reference's per-sample Normalize, written out with its own check, on the data set's constant stds
    "suite/bench/reference_pipeline.py": "std evaluated to zero",
}


def test_bare_value_errors_are_only_the_internal_ones():
    src = Path(wninit.__file__).parent
    found = {}
    for path in sorted(src.rglob("*.py")):
        for match in re.finditer(r"raise (?:ValueError|TypeError)\((f?\"[^\"]*)", path.read_text()):
            found.setdefault(str(path.relative_to(src)), []).append(match.group(1))
    assert set(found) == set(INTERNAL_VALUE_ERRORS), found
    for name, text in INTERNAL_VALUE_ERRORS.items():
        assert len(found[name]) == 1 and text in found[name][0]
