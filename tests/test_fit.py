"""fit: deterministic, exactly resumable, divergence as a result, files written atomically (docs/method.md §6.1)."""
import csv
import importlib
import json
import math
import re

import pytest
import torch

from wninit.suite.data import Loader, Split
from wninit.errors import UserError
from wninit.suite.train import RunConfig, fit, train_epoch
from wninit.suite.train.loop import Single
from wninit.suite.train.hessian_task import hessian_batch_count
from wninit.suite.train.runtime import resolve_device
from wninit.suite.train.result import CSV_COLUMNS, RunResult

SMALL = RunConfig(dataset="mnist5k", arch="mlp", depth=3, width=32, epochs=4, lr=0.01, momentum=0.9,
                  weight_decay=1e-4, schedule=1, warmup_epochs=1.5, threads=1)


class Interrupt(Exception):
    pass


def test_same_config_twice_gives_bitwise_identical_metrics():
    a, b = fit(SMALL), fit(SMALL)
    assert a.status == "completed" and a.epochs_done == SMALL.epochs
    assert a.metrics() == b.metrics()  # floats compared with ==: bit for bit
    assert a.test_acc > 0.5  # it learned something (chance is 0.1)


def test_datadep_and_accumulation_are_deterministic_too():
    cfg = SMALL.replace(scheme="datadep", lr=0.003, mini_batch_size=64, epochs=2)
    first = fit(cfg)
    assert first.status == "completed" and first.test_acc > 0.2  # it learns (0.43; chance 0.1): not two equal failures
    assert first.metrics() == fit(cfg).metrics()


def test_kill_and_resume_continues_exactly(tmp_path):
    full = fit(SMALL)

    def stop_after_epoch_1(row):
        if row["epoch"] == 1:
            raise Interrupt

    with pytest.raises(Interrupt):
        fit(SMALL, out_dir=tmp_path, on_epoch=stop_after_epoch_1)
    assert (tmp_path / "checkpoint.pt").exists() and (tmp_path / "epochs.csv").exists()
    assert not (tmp_path / "result.json").exists()  # a partial run never looks complete
    seen = []
    resumed = fit(SMALL, out_dir=tmp_path, on_epoch=lambda row: seen.append(row["epoch"]))
    assert seen == [2, 3]  # only the remaining epochs ran
    assert resumed.metrics() == full.metrics()
    stored = RunResult.from_json((tmp_path / "result.json").read_text())
    assert stored.metrics() == json.loads(json.dumps(full.metrics()))
    # a finished run directory is not trained again
    again = fit(SMALL, out_dir=tmp_path, on_epoch=lambda row: seen.append(row["epoch"]))
    assert seen == [2, 3] and again.metrics() == stored.metrics()


def test_out_dir_files(tmp_path):
    result = fit(SMALL.replace(epochs=2), out_dir=tmp_path)
    with open(tmp_path / "epochs.csv") as f:
        rows = list(csv.reader(f))
    assert tuple(rows[0]) == CSV_COLUMNS  # docs/method.md §6.1: the reference's columns
    assert [int(r[0]) for r in rows[1:]] == [0, 1]
    assert [float(r[1]) for r in rows[1:]] == [e["train_loss"] for e in result.epochs]
    stored = json.loads((tmp_path / "result.json").read_text())
    for key in ("status", "test_acc", "best_val_acc", "best_epoch", "diverged_at", "wall_s", "config", "env"):
        assert key in stored
    assert stored["config"]["dataset"] == "mnist5k" and stored["run_id"] == SMALL.replace(epochs=2).run_id
    assert not list(tmp_path.glob(".*tmp"))  # no temp files left behind
    # another config in the same directory is refused, not mixed in
    with pytest.raises(UserError, match="another output directory"):
        fit(SMALL.replace(seed=5), out_dir=tmp_path)
    # resume=False starts over
    assert fit(SMALL.replace(epochs=2), out_dir=tmp_path, resume=False).metrics() == result.metrics()


def test_huge_lr_diverges_as_a_result_not_an_exception():
    result = fit(SMALL.replace(lr=1e5, warmup_epochs=0.0))
    assert result.status == "diverged"
    assert result.diverged_at["epoch"] == 0 and result.diverged_at["step"] >= 0
    assert result.test_acc is None and result.best_epoch is None and result.epochs_done == 0  # no checkpoint


def test_divergence_after_an_epoch_tests_the_best_checkpoint(monkeypatch):
    loop = importlib.import_module("wninit.suite.train.loop")
    real = loop.train_epoch

    def poisoned(members, lrs, *args, **kw):
        if fit_module_epoch["n"] == 2:
            return None, None, {0: 7}
        fit_module_epoch["n"] += 1
        return real(members, lrs, *args, **kw)

    fit_module_epoch = {"n": 0}
    monkeypatch.setattr(loop, "train_epoch", poisoned)
    result = fit(SMALL)
    assert result.status == "diverged" and result.diverged_at == {"epoch": 2, "step": 7}
    # the tested checkpoint is the best by validation of the two finished epochs (the first on a tie)
    val = [row["val_acc"] for row in result.epochs]
    assert result.epochs_done == 2 and len(val) == 2 and result.best_epoch == val.index(max(val))
    assert result.best_val_acc == max(val) and result.train_acc == result.epochs[result.best_epoch]["train_acc"]
    assert 0 < result.test_acc <= 1


def test_train_epoch_reports_the_first_non_finite_step_on_either_check_interval():
    torch.manual_seed(0)
    x, y = torch.randn(256, 1, 4, 4), torch.randint(0, 3, (256,))
    x[5 * 16 + 3] = float("nan")  # sample in mini-batch 5 of 16, unshuffled
    for every in (1, 4, 32):
        model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        loader = Loader(Split(x, y), 16, shuffle=False)
        assert train_epoch(Single(model, opt, loader), [0.1] * len(loader), 1, every) == (None, None, {0: 5})


def test_gradient_accumulation_equals_the_full_batch():
    torch.manual_seed(0)
    x, y = torch.randn(512, 1, 6, 6), torch.randint(0, 4, (512,))
    models = []
    for batch, acc in ((128, 1), (32, 4)):
        torch.manual_seed(1)
        model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(36, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
        opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
        loader = Loader(Split(x, y), batch, generator=torch.Generator().manual_seed(3))
        train_epoch(Single(model, opt, loader), [0.5] * len(loader), acc)
        models.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    # same permutation, same 4 updates: equal up to float summation order
    assert torch.allclose(models[0], models[1], rtol=1e-5, atol=1e-6)


def test_no_validation_split_selects_the_last_epoch():
    result = fit(SMALL.replace(val_fraction=0.0, epochs=2))
    assert result.best_epoch == 1 and result.best_val_acc is None
    assert result.epochs[-1]["val_acc"] is None and result.test_acc > 0.3


def test_weight_decay_exemption_changes_only_what_it_should():
    import wninit
    from wninit.models import build_model
    from wninit.suite.train.single_run import _param_groups

    model = build_model("mlp", in_shape=(1, 4, 4), num_classes=3, depth=2, width=8, norm="wn")
    cfg = RunConfig(weight_decay=1e-4, wd_exempt_gain_bias=True)
    decayed, exempt = _param_groups(model, cfg)
    exempt_ids = {id(p) for p in exempt["params"]}
    assert exempt["weight_decay"] == 0.0
    assert all(id(g) in exempt_ids for g in wninit.weightnorm.access.gain_parameters(model))
    names = {n for n, p in model.named_parameters() if id(p) in exempt_ids}
    assert names == {n for n, _ in model.named_parameters() if n.endswith((".g", "bias"))}
    assert len(_param_groups(model, cfg.replace(wd_exempt_gain_bias=False))) == 1  # the reference: decay on all


def test_bad_data_and_devices_are_user_errors(tmp_path, monkeypatch):
    with pytest.raises(UserError, match="batch_size 5000 is larger than the 3600-sample training split"):
        fit(SMALL.replace(batch_size=5000), out_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UserError, match="device 'cuda' is not available"):
        resolve_device("cuda")
    assert resolve_device("auto").type in ("cpu", "mps")


def test_hessian_task_records_the_log_spectral_norm(monkeypatch, tmp_path):
    import wninit.diagnostics.hessian as hessian_module
    calls = {}

    def fake(model, batches, *, iters=20, seed=0):
        calls.update(n=len(batches), iters=iters, seed=seed, training=model.training, shape=tuple(batches[0][0].shape))
        return 7.5

    monkeypatch.setattr(hessian_module, "hessian_spectral_norm", fake)
    cfg = SMALL.replace(task="hessian", hessian_iters=3, hessian_batches=0.1)
    result = fit(cfg, out_dir=tmp_path)
    # 29 batches per epoch -> floor(0.1 * 29) = 2, the reference's 10% rule (docs/method.md §7.6)
    assert calls == {"n": 2, "iters": 3, "seed": SMALL.seed, "training": True, "shape": (128, 1, 28, 28)}
    assert result.status == "completed" and result.log_hessian_norm == math.log(7.5)
    assert json.loads((tmp_path / "result.json").read_text())["log_hessian_norm"] == math.log(7.5)
    assert hessian_batch_count(0.1, 390) == 39 and hessian_batch_count(0.01, 29) == 1
    assert hessian_batch_count(5, 29) == 5 and hessian_batch_count(100, 29) == 29


# ---- the command line ------------------------------------------------------------------------------
def _cli(argv, capsys):
    from wninit.suite.cli import main
    rc = main(argv)
    return rc, capsys.readouterr()


def test_cli_train_end_to_end(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "--depth", "2", "--width", "16", "--epochs", "2", "--lr", "0.01", "--momentum", "0.9",
            "--threads", "1", "--no-progress", "--out", str(out)]
    rc, io = _cli(argv, capsys)
    assert rc == 0 and io.out.count("\n") == 1 and "completed after 2 epochs" in io.out
    stored = json.loads((out / "result.json").read_text())
    expected = RunConfig(depth=2, width=16, epochs=2, lr=0.01, momentum=0.9, threads=1)
    assert stored["run_id"] == expected.run_id and stored["status"] == "completed"
    assert (out / "epochs.csv").read_text().startswith(",".join(CSV_COLUMNS))
    # the same command again finds the finished run; --config from its result.json names the same run
    rc, io2 = _cli(argv, capsys)
    assert rc == 0 and io2.out == io.out
    rc, io3 = _cli(["train", "--config", str(out / "result.json"), "--out", str(out), "--no-progress"], capsys)
    assert rc == 0 and io3.out == io.out


@pytest.mark.parametrize("flags,message", [
    (["--dataset", "imagenet"], "RunConfig.dataset must be one of"),
    (["--lr", "0"], "RunConfig.lr must be > 0"),
    (["--lr", "-0.1"], "RunConfig.lr must be > 0"),
    (["--batch-size", "4000"], "larger than the 3600-sample training split"),
    (["--epochs", "2", "--warmup-epochs", "2"], "warmup_epochs must be shorter than training"),
    (["--device", "cuda"], "device 'cuda' is not available"),
    (["--device", "mps"], "device 'mps' is not available"),
    (["--scheme", "he"], "is for networks without weight norm"),
])
def test_cli_bad_input_exits_2_with_one_line_and_no_result(tmp_path, capsys, monkeypatch, flags, message):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    out = tmp_path / "run"
    rc, io = _cli(["train", "--depth", "2", "--width", "8", "--epochs", "3", "--threads", "1", "--out", str(out)] + flags,
                  capsys)
    assert rc == 2 and message in io.err and io.err.count("\n") == 1 and io.out == ""
    assert not (out / "result.json").exists() and not out.exists()


# -- a checkpoint that cannot be resumed from is reported, never silently dropped --------------------------

def _checkpoint_bytes(tmp_path, state: dict) -> bytes:
    from wninit.suite.train import checkpoint as ckpt

    ckpt.save_checkpoint(tmp_path, state)
    return (tmp_path / ckpt.CHECKPOINT).read_bytes()


@pytest.mark.parametrize("damage, reason", [
    (lambda good: b"", "not a torch checkpoint"),
    (lambda good: good[: len(good) // 2], "not a torch checkpoint"),
    (lambda good: good[:100] + b"\xff" * 60 + good[160:], "archive is damaged"),
    (lambda good: good[:400] + b"\xff" * 60 + good[460:], "archive is damaged"),
    ("old-version", "incompatible wninit version (it has no optimizer, data_rng"),
    ("foreign", "weights-only load refuses"),
])
def test_a_checkpoint_that_cannot_be_loaded_is_reported_and_the_run_starts_over(tmp_path, damage, reason):
    from wninit.suite.train import checkpoint as ckpt

    cfg = SMALL.replace(epochs=2, warmup_epochs=0.0)
    good = {k: 0 for k in ckpt.RESUME_KEYS} | {"run_id": cfg.run_id}
    if damage == "old-version":
        blob = _checkpoint_bytes(tmp_path, {"run_id": cfg.run_id, "epoch": 1, "model": {}})
    elif damage == "foreign":
        blob = _checkpoint_bytes(tmp_path, {**good, "rows": [Split]})  # a class: not a weights-only object
    else:
        blob = damage(_checkpoint_bytes(tmp_path, good))
    assert ckpt.load_checkpoint(tmp_path, cfg) is not None or damage == "old-version" or damage == "foreign"
    (tmp_path / ckpt.CHECKPOINT).write_bytes(blob)
    with pytest.warns(ckpt.DiscardedCheckpoint, match=f"cannot be resumed from: .*{re.escape(reason)}.*starts over"):
        assert ckpt.load_checkpoint(tmp_path, cfg) is None
    if damage == "old-version":  # the whole run: the warning, then the same result as a fresh start
        with pytest.warns(ckpt.DiscardedCheckpoint):
            resumed = fit(cfg, out_dir=tmp_path)
        assert resumed.status == "completed" and resumed.epochs == fit(cfg).epochs


def test_a_failure_to_read_a_checkpoint_that_is_not_a_damaged_file_is_raised(tmp_path, monkeypatch):
    from wninit.suite.train import checkpoint as ckpt

    ckpt.save_checkpoint(tmp_path, {k: 0 for k in ckpt.RESUME_KEYS} | {"run_id": SMALL.run_id})

    def broken(*args, **kwargs):
        raise RuntimeError("a bug in the loader")
    monkeypatch.setattr(torch, "load", broken)
    with pytest.raises(RuntimeError, match="a bug in the loader"):
        ckpt.load_checkpoint(tmp_path, SMALL)
