"""What a user meets first: `wninit --help` and each command's help in plain words, quick, one flag per option,
a first `wninit train` that ends in seconds, and the small input mistakes each answered in one sentence."""
import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest
from torch import nn

import wninit
from wninit.errors import UserError
from wninit.suite.cli import COMMANDS, build_parser, main


def _help(capsys, *argv) -> str:
    with pytest.raises(SystemExit) as done:
        main([*argv, "--help"])
    assert done.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("command", COMMANDS)
def test_help_is_plain_text(command, capsys):
    out = _help(capsys, command)
    description = out.split("\n\n")[1]
    assert "`" not in out and "][" not in out, out
    assert not description.lower().startswith("wninit") and description[0].isupper(), description


def test_wninit_help_is_plain_and_imports_no_torch():
    src = str(Path(wninit.__file__).parents[1])
    code = ("import sys\nfrom wninit.suite.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'numpy', 'matplotlib')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, PYTHONPATH=src))
    assert done.returncode == 0, done.stderr
    *help_lines, loaded = done.stdout.strip().splitlines()
    assert loaded == "[]" and "`" not in "\n".join(help_lines)
    assert all(name in "\n".join(help_lines) for name in COMMANDS)


def test_every_command_has_one_flag_per_option():
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for command, parser in sub.choices.items():
        flags = {s for a in parser._actions for s in a.option_strings if s.startswith("--")}
        twins = sorted(f for f in flags if f + "s" in flags or f.replace("input", "in") in flags - {f})
        assert not twins, f"wninit {command} has two flags for one option: {twins}"
    diagnose = {s for a in sub.choices["diagnose"]._actions for s in a.option_strings}
    assert {"--input-shape", "--scheme"} <= diagnose and not {"--in-shape", "--schemes"} & diagnose


def test_a_first_train_is_short_and_a_config_keeps_its_epochs(tmp_path):
    from wninit.suite.cli.train import config_from_args
    from wninit.suite.train.config import RunConfig

    parse = build_parser(["train"]).parse_args
    assert config_from_args(parse(["train"])).epochs == 10
    assert config_from_args(parse(["train", "--epochs", "200"])).epochs == 200
    saved = tmp_path / "config.json"
    saved.write_text(RunConfig(epochs=30).to_json() if hasattr(RunConfig, "to_json") else
                     __import__("json").dumps(RunConfig(epochs=30).to_dict()))
    assert config_from_args(parse(["train", "--config", str(saved)])).epochs == 30


def test_train_help_says_what_peer_is(capsys):
    out = " ".join(_help(capsys, "train").split())
    assert "--peer PEER a normalizer-free peer" in out and "fixup" in out


def test_export_of_a_directory_says_it_is_a_directory(tmp_path, capsys):
    assert main(["export", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "is a directory" in err and "does not exist" not in err


def test_a_dry_run_with_a_bad_store_prints_no_plan(tmp_path, capsys):
    assert main(["sweep", "fig2_mlp_depth", "--dry-run", "--store", str(tmp_path)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1


def test_the_no_wn_layer_error_names_the_call_that_wraps_any_model():
    with pytest.raises(UserError, match=r"wrap it with wninit\.weight_norm\(model\)") as err:
        wninit.initialize(nn.Sequential(nn.Linear(4, 4)), "proposed")
    assert not str(err.value).split(": ", 1)[1].startswith("build it with norm='wn'")


@pytest.mark.parametrize("call", [wninit.initialize, wninit.explain, wninit.weight_norm])
@pytest.mark.parametrize("model", ["resnet", wninit.models.MLP])
def test_a_model_that_is_not_a_module_is_one_sentence(call, model):
    with pytest.raises(UserError, match="takes the model itself, an nn.Module") as err:
        call(model)
    assert "\n" not in str(err.value)


def test_messages_count_epochs_from_1():
    from wninit.suite.train.result import RunResult

    fields = dict(run_id="abc", status="diverged", test_acc=None, best_val_acc=0.5, best_epoch=0, epochs_done=1,
                  diverged_at={"epoch": 0, "step": 0}, wall_s=1.0)
    text = RunResult(**{k: v for k, v in fields.items() if k in RunResult.__dataclass_fields__}).summary()
    assert "(epoch 1)" in text and "in epoch 1 step 1" in text and "epoch 0" not in text


def test_diagnose_without_out_writes_nothing(tmp_path, monkeypatch, capsys):
    (tmp_path / "net.py").write_text("import torch\nfrom torch import nn\nfrom torch.nn.utils.parametrizations import "
                                     "weight_norm as wn\n\ndef build():\n    return nn.Sequential(wn(nn.Conv1d(4, 8, 3)), "
                                     "nn.ReLU(), wn(nn.Conv1d(8, 8, 3)))\n")
    monkeypatch.chdir(tmp_path)
    for argv in (["net.py:build", "--input-shape", "4,16"], ["--arch", "mlp", "--depth", "3", "--width", "8"]):
        assert main(["diagnose", *argv, "--batch", "2"]) == 0
        assert "forward" in capsys.readouterr().out
        assert [p.name for p in tmp_path.iterdir() if p.name != "__pycache__"] == ["net.py"]
