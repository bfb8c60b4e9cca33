"""`fit(cfg)`: one run of the reference protocol (docs/method.md §6.1), alone (the single-run loop).

seed -> data (seeded validation split) -> model -> init (datadep on the first shuffled, augmented training
batch, docs/method.md §4) -> SGD epochs (schedule + per-iteration warmup, gradient accumulation) -> validation each
epoch -> the best-validation state evaluated on test. A NaN/Inf training loss is a result (status
`diverged`), never an exception. With `out_dir`, every epoch leaves an atomic checkpoint from which
a rerun continues bit for bit on CPU, and `result.json` appears only when the run is over.

The steps a stacked group's members share with this loop are in `.protocol`; where and how the run
executes (device, seeds, threads) in `.runtime`; the Hessian task in `.hessian_task`.
"""
from __future__ import annotations

import functools
import time
from pathlib import Path

import torch

from wninit.errors import UserError
from wninit.suite.train import accel
from wninit.suite.train import checkpoint as ckpt_files
from wninit.suite.train.config import RunConfig
from wninit.suite.train.hessian_task import run_hessian
from wninit.suite.train.loop import Single, test_best, train_epochs
from wninit.suite.train.monitor import Monitor
from wninit.suite.train.protocol import RunRecord, build_member, check_interval, load_data, weight_decay
from wninit.suite.train.result import RunResult
from wninit.suite.train.runtime import derived_seed, env, resolve_device, run_scope
from wninit.suite.train.schedules import epoch_lrs

__all__ = ["fit"]


def fit(cfg: RunConfig, *, out_dir: str | Path | None = None, resume: bool = True, progress: bool = False,
        on_epoch=None, tensorboard: bool = False) -> RunResult:
    """Run `cfg` and return its [`RunResult`][wninit.suite.train.result.RunResult] (docs/method.md §6.1).

    The run seeds torch's global random stream as the reference does, and gives the caller's stream (and
    thread count) back when it ends.

    Args:
        cfg: the run.
        out_dir: where `epochs.csv`, `checkpoint.pt` and, at the end, `result.json` go; None keeps
            everything in memory.
        resume: continue from `out_dir`'s checkpoint (or return its finished result); False starts over.
        progress: a rich progress bar over epochs, if rich is installed.
        on_epoch: called with each finished epoch's row, after its checkpoint is written.
        tensorboard: also log the rows to `out_dir/tb` (needs the tensorboard package).

    Examples:
        >>> result = fit(RunConfig(dataset="mnist5k", depth=20, lr=0.001, momentum=0.9, epochs=10))
        >>> result.status, result.test_acc
    """
    if not isinstance(cfg, RunConfig):
        raise UserError(f"fit needs a wninit.suite.train.RunConfig, got {type(cfg).__name__}")
    if cfg.task == "rl":  # an agent on a game, not a classifier on data (wninit.suite.rl)
        from wninit.suite.rl.run import fit_rl
        return fit_rl(cfg, out_dir=out_dir, resume=resume, progress=progress, on_epoch=on_epoch)
    cfg = cfg.resolved()
    device = resolve_device(cfg.device)
    out = Path(out_dir) if out_dir is not None else None
    if out is not None and resume:
        finished = ckpt_files.read_result(out, cfg)
        if finished is not None:
            return finished
    with run_scope(cfg.threads, device, cfg.portable):
        return _run(cfg, device, out, resume, progress, on_epoch, tensorboard)


def _run(cfg: RunConfig, device, out, resume, progress, on_epoch, tensorboard) -> RunResult:
    from wninit.suite.data import Loader

    started = time.perf_counter()
    data = load_data(cfg)  # data faults raise here, before any file is touched
    if out is not None and not resume:
        ckpt_files.clear_run_files(out)
    state = ckpt_files.load_checkpoint(out, cfg) if out is not None and resume else None
    gen = torch.Generator(device).manual_seed(derived_seed(cfg.seed, "data"))
    loader = Loader(data.train, cfg.loader_batch_size, shuffle=True, crop=4 if cfg.crop else 0, flip=cfg.flip,
                    cutout=cfg.cutout, generator=gen, device=device)
    fresh = state is None or cfg.peer != "none"  # a resumed run rebuilds its peer's modules too
    model = build_member(cfg, data.in_shape, data.num_classes, device,
                         (lambda: next(iter(loader))[0]) if fresh else None)
    if cfg.task == "hessian":
        return run_hessian(cfg, device, model, loader, out, started)
    run = _SingleRun(cfg, device, model, data, loader, gen, out, started)
    if state is not None:
        run.restore(state)
    with Monitor(progress, tensorboard, out, cfg.epochs, run.start_epoch, f"run {cfg.run_id}") as monitor:
        run.train(monitor, on_epoch)
    return run.finish()


def _param_groups(model: torch.nn.Module, cfg: RunConfig) -> list[dict]:
    """SGD's parameter groups under the weight-decay rule (`.protocol.weight_decay`): one group when every
    parameter decays alike, else the decayed parameters and the exempt ones (weight decay 0)."""
    from wninit.weightnorm.access import gain_parameters

    kinds = {id(p): "b" for n, p in model.named_parameters() if n.endswith("bias")}
    kinds.update({id(p): "g" for p in gain_parameters(model)})
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.affine:
            kinds[id(m.weight)] = "bn"
    params = list(model.parameters())
    exempt = [p for p in params if weight_decay(cfg, kinds.get(id(p), "w")) != cfg.weight_decay]
    if not exempt:
        return [{"params": params}]
    ids = {id(p) for p in exempt}
    return [{"params": [p for p in params if id(p) not in ids]}, {"params": exempt, "weight_decay": 0.0}]


class _SingleRun:
    """One run's training state: the model and its SGD as the loop's one member, the data stream, the
    `RunRecord`, the clock."""

    def __init__(self, cfg: RunConfig, device: torch.device, model, data, loader, gen, out: Path | None,
                 started: float):
        self.cfg, self.device, self.gen, self.out = cfg, device, gen, out
        self.model = accel.to_memory_format(model, cfg.channels_last)  # before the optimizer holds the parameters
        self.optimizer = torch.optim.SGD(_param_groups(self.model, cfg), lr=cfg.lr, momentum=cfg.momentum,
                                         weight_decay=cfg.weight_decay)
        n_batches = len(loader)

        def split(s):
            return accel.as_input(s.x.to(device), cfg.channels_last), s.y.to(device)
        self.member = Single(self.model, self.optimizer, loader,
                             trained=accel.training_module(self.model, cfg.compile),  # shares the parameters
                             lrs=lambda epoch: epoch_lrs(cfg, epoch, n_batches), val=split(data.val),
                             test=split(data.test), autocast=functools.partial(accel.autocast, cfg.precision, device),
                             channels_last=cfg.channels_last)
        self.record, self.start_epoch, self.started, self.wall_before = RunRecord(), 0, started, 0.0

    def wall_s(self) -> float:
        """Seconds of training, those of the runs this one resumes included."""
        return self.wall_before + time.perf_counter() - self.started

    def restore(self, state: dict) -> None:
        """Continue from a checkpoint: weights, optimizer, both random streams, the record, the clock."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.gen.set_state(state["data_rng"])
        torch.set_rng_state(state["torch_rng"])
        self.record = RunRecord.from_checkpoint(state)
        self.start_epoch, self.wall_before = state["epoch"], state["wall_s"]

    def train(self, monitor: Monitor, on_epoch) -> None:
        """The remaining epochs (train/loop.py); each finished one is saved and reported."""
        def after_epoch(epoch: int) -> None:
            row = self.record.rows[-1]
            if self.out is not None:
                self._save(epoch)
            monitor.epoch(row)
            if on_epoch is not None:
                on_epoch(dict(row))
        train_epochs(self.member, [self.cfg], [self.record], self.start_epoch, check_interval(self.device),
                     after_epoch)

    def _save(self, epoch: int) -> None:
        """The epoch's CSV and everything an exact resume needs, each written atomically."""
        ckpt_files.write_csv(self.out, self.record.rows)
        ckpt_files.save_checkpoint(self.out, {
            "run_id": self.cfg.run_id, "epoch": epoch + 1, "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(), "data_rng": self.gen.get_state(),
            "torch_rng": torch.get_rng_state(), **self.record.checkpoint(), "wall_s": self.wall_s()})

    def finish(self) -> RunResult:
        """Test the best checkpoint and assemble the result (and write it, with `out`)."""
        test_acc, = test_best(self.member, [self.record])
        result = self.record.result(self.cfg, test_acc, self.wall_s(), env(self.device, self.cfg.seed))
        if self.out is not None:
            ckpt_files.write_csv(self.out, self.record.rows)
            ckpt_files.write_result(self.out, result)
        return result
