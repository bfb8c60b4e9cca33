"""The accelerator options of a run (train/accel.py): bf16 autocast, channels_last, torch.compile.

CI has no GPU, so these run on the CPU, where all three work too: what is checked is the wiring (the
option reaches the forward pass, the run id treats it as designed, checkpoints stay eager) and that the
numbers stay those of the plain run within the precision the option implies.
"""
from __future__ import annotations

import pytest
import torch

from wninit.suite.cli import main
from wninit.errors import UserError
from wninit.suite.sweep.ensemble import batchable
from wninit.suite.sweep.worker import _config
from wninit.suite.train import accel
from wninit.suite.train.config import RunConfig
from wninit.suite.train import fit

TINY = dict(dataset="digits", depth=3, width=32, epochs=2, lr=0.05, momentum=0.9, batch_size=64, seed=3)
CNN = dict(dataset="digits", arch="cnn", depth=2, width=8, epochs=1, lr=0.05, momentum=0.9, batch_size=64, seed=3)


def test_fp32_run_ids_are_those_from_before_the_options_existed():
    # schema-1 ids pinned from the commit before precision/channels_last/compile were added: old stores map
    from wninit.suite.train.run_ids import legacy_run_id

    assert legacy_run_id(RunConfig()) == "97791385b5e9"
    wrn = RunConfig(dataset="cifar10", arch="wrn", depth=40, k=10, lr=0.1, momentum=0.9, weight_decay=5e-4,
                    epochs=200, schedule=3, cutout=16)
    assert legacy_run_id(wrn) == "a2134e028ec1"
    assert legacy_run_id(wrn.replace(channels_last=True, compile=True)) == "a2134e028ec1"
    assert wrn.replace(channels_last=True, compile=True).run_id == wrn.run_id  # execution only
    assert wrn.replace(precision="bf16").run_id != wrn.run_id  # changes results: a different run


def test_bad_values_are_one_sentence_errors():
    with pytest.raises(UserError, match="precision must be one of fp32, bf16"):
        RunConfig(precision="fp16")
    with pytest.raises(UserError, match="compile must be True or False"):
        RunConfig(compile="yes")
    with pytest.raises(UserError, match="precision must be 'fp32' for task 'hessian'"):
        RunConfig(task="hessian", precision="bf16")


def test_bf16_runs_the_forward_pass_in_bf16_and_keeps_fp32_weights():
    model = torch.nn.Linear(4, 3)
    with accel.autocast("bf16", torch.device("cpu")):
        assert model(torch.randn(2, 4)).dtype == torch.bfloat16
    with accel.autocast("fp32", torch.device("cpu")):
        assert model(torch.randn(2, 4)).dtype == torch.float32
    cfg = RunConfig(**TINY)
    plain, half = fit(cfg), fit(cfg.replace(precision="bf16"))
    assert half.status == "completed" and half.env["device"] == "cpu"
    # bf16 keeps 8 bits of mantissa: the runs differ, but stay close over 2 epochs (stated tolerance)
    assert plain.epochs[-1]["train_loss"] != half.epochs[-1]["train_loss"]
    assert abs(plain.epochs[-1]["train_loss"] - half.epochs[-1]["train_loss"]) < 0.1
    assert abs(plain.test_acc - half.test_acc) < 0.05


def test_channels_last_gives_the_same_run(tmp_path):
    cfg = RunConfig(**CNN)
    plain, nhwc = fit(cfg), fit(cfg.replace(channels_last=True), out_dir=tmp_path)
    assert nhwc.run_id == plain.run_id
    for a, b in zip(plain.epochs, nhwc.epochs):  # same arithmetic, another summation order: float32 rounding
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-4)
        assert b["val_acc"] == pytest.approx(a["val_acc"], abs=2e-3)
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=False)["model"]
    assert any(t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last) for t in state.values())


def test_compile_trains_the_same_parameters_and_checkpoints_stay_eager(tmp_path, monkeypatch):
    # aot_eager traces forward and backward as inductor does, without needing a C++ toolchain in CI
    monkeypatch.setattr(accel, "COMPILE_OPTIONS", {"backend": "aot_eager"})
    torch._dynamo.reset()
    cfg = RunConfig(**TINY)
    eager, compiled = fit(cfg), fit(cfg.replace(compile=True), out_dir=tmp_path)
    for a, b in zip(eager.epochs, compiled.epochs):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-5)
    assert compiled.test_acc == pytest.approx(eager.test_acc, abs=2e-3)
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=False)["model"]
    assert not any(k.startswith("_orig_mod") for k in state)  # loadable by an eager model


def test_sweeps_pass_the_options_and_batching_leaves_them_to_fit():
    cfg = RunConfig(**TINY)
    assert _config(cfg.to_dict(), {"channels_last": True, "compile": True}).compile is True
    assert batchable(cfg) and not batchable(cfg.replace(precision="bf16")) and not batchable(cfg.replace(compile=True))


def test_cli_takes_the_options(tmp_path, capsys):
    assert main(["train", "--dataset", "digits", "--depth", "2", "--width", "16", "--epochs", "1",
                 "--precision", "bf16", "--out", str(tmp_path / "run")]) == 0
    assert main(["train", "--precision", "fp8", "--out", str(tmp_path / "bad")]) == 2
    assert "precision" in capsys.readouterr().err


@pytest.mark.parametrize("api", ["wninit", "torch"])
def test_compile_traces_each_suite_model_as_one_graph(api):
    # A graph break inside the WN layers' forward (the twice_differentiable flag was a ContextVar read)
    # made torch.compile compile every layer shape apart until its recompile limit sent the rest to eager:
    # seen on an H200 with `wninit train --compile`. One graph, no break, for every model.
    import wninit
    from wninit.models import CNN, MLP, ResNet, WideResNet

    for model, x in ((MLP(784, 16, 3, 10, wn_api=api), torch.randn(2, 784)),
                     (CNN(3, 8, 3, 10, wn_api=api), torch.randn(2, 3, 32, 32)),
                     (ResNet(8, 10, wn_api=api), torch.randn(2, 3, 32, 32)),
                     (WideResNet(10, 1, 10, wn_api=api), torch.randn(2, 3, 32, 32))):
        wninit.initialize(model, "proposed")
        explained = torch._dynamo.explain(model)(x)
        assert (explained.graph_count, explained.graph_break_count) == (1, 0), (type(model).__name__, explained.break_reasons)
