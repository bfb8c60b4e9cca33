"""``fit(cfg)``: one run of the reference protocol (docs/method.md §6.1), alone (the single-run loop).

seed -> data (seeded validation split) -> model -> init (datadep on the first shuffled, augmented training
batch, docs/method.md §4) -> SGD epochs (schedule + per-iteration warmup, gradient accumulation) -> validation each
epoch -> the best-validation state evaluated on test. A NaN/Inf training loss is a result (status
``diverged``), never an exception. With ``out_dir``, every epoch leaves an atomic checkpoint from which
a rerun continues bit for bit on CPU, and ``result.json`` appears only when the run is over.

The steps a stacked group's members share with this loop are in :mod:`.protocol`; where and how the run
executes (device, seeds, threads) in :mod:`.runtime`; the Hessian task in :mod:`.hessian_task`.
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
from wninit.suite.train.loop import evaluate, train_epoch
from wninit.suite.train.monitor import Monitor
from wninit.suite.train.protocol import RunRecord, build_member, check_interval, load_data
from wninit.suite.train.result import RunResult
from wninit.suite.train.runtime import derived_seed, env, resolve_device, run_scope
from wninit.suite.train.schedules import epoch_lrs

__all__ = ["fit"]


def fit(cfg: RunConfig, *, out_dir: str | Path | None = None, resume: bool = True, progress: bool = False,
        on_epoch=None, tensorboard: bool = False) -> RunResult:
    """Run ``cfg`` and return its :class:`RunResult` (docs/method.md §6.1).

    The run seeds torch's global random stream as the reference does, and gives the caller's stream (and
    thread count) back when it ends.

    Args:
        cfg: the run.
        out_dir: where ``epochs.csv``, ``checkpoint.pt`` and, at the end, ``result.json`` go; None keeps
            everything in memory.
        resume: continue from ``out_dir``'s checkpoint (or return its finished result); False starts over.
        progress: a rich progress bar over epochs, if rich is installed.
        on_epoch: called with each finished epoch's row, after its checkpoint is written.
        tensorboard: also log the rows to ``out_dir/tb`` (needs the tensorboard package).

    Examples:
        >>> result = fit(RunConfig(dataset="mnist5k", depth=20, lr=0.001, momentum=0.9, epochs=10))
        >>> result.status, result.test_acc
    """
    if not isinstance(cfg, RunConfig):
        raise UserError(f"fit needs a wninit.suite.train.RunConfig, got {type(cfg).__name__}")
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


def _param_groups(model: torch.nn.Module, exempt: bool, weight_decay: float) -> list[dict]:
    """One group (the reference: decay on every parameter, docs/method.md §6.1), or two with g, BN weights and
    biases exempt from weight decay (they set scales and shifts, not directions)."""
    if not exempt or weight_decay == 0:
        return [{"params": list(model.parameters())}]
    from wninit.weightnorm.access import gain_parameters

    scales = {id(p) for p in gain_parameters(model)}
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.affine:
            scales.add(id(m.weight))
    no_decay = [p for n, p in model.named_parameters() if id(p) in scales or n.endswith("bias")]
    ids = {id(p) for p in no_decay}
    return [{"params": [p for p in model.parameters() if id(p) not in ids]},
            {"params": no_decay, "weight_decay": 0.0}]


def _clone_state(model: torch.nn.Module) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


class _SingleRun:
    """One run's training state: the model and its SGD, the data stream, the :class:`RunRecord`, the clock."""

    def __init__(self, cfg: RunConfig, device: torch.device, model, data, loader, gen, out: Path | None,
                 started: float):
        self.cfg, self.device, self.data, self.loader, self.gen, self.out = cfg, device, data, loader, gen, out
        self.model = accel.to_memory_format(model, cfg.channels_last)  # before the optimizer holds the parameters
        self.optimizer = torch.optim.SGD(_param_groups(self.model, cfg.wd_exempt_gain_bias, cfg.weight_decay),
                                         lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
        self.amp = functools.partial(accel.autocast, cfg.precision, device)
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
        """The remaining epochs; the first NaN/Inf loss ends them (docs/method.md §6.1)."""
        cfg, record = self.cfg, self.record
        val_x = accel.as_input(self.data.val.x.to(self.device), cfg.channels_last)
        val_y = self.data.val.y.to(self.device)
        n_batches, every = len(self.loader), check_interval(self.device)
        trained = accel.training_module(self.model, cfg.compile)  # shares the model's parameters
        for epoch in range(self.start_epoch, cfg.epochs):
            train_loss, train_acc, bad_step = train_epoch(
                trained, self.optimizer, self.loader, epoch_lrs(cfg, epoch, n_batches), cfg.accumulation_steps,
                every, autocast=self.amp, channels_last=cfg.channels_last)
            if bad_step is not None:
                record.diverge(epoch, bad_step)
                break
            val_loss, val_acc = evaluate(self.model, val_x, val_y, autocast=self.amp)
            row = record.end_epoch(cfg, epoch, train_loss, train_acc, val_loss, val_acc,
                                   lambda: _clone_state(self.model))
            if self.out is not None:
                self._save(epoch)
            monitor.epoch(row)
            if on_epoch is not None:
                on_epoch(dict(row))

    def _save(self, epoch: int) -> None:
        """The epoch's CSV and everything an exact resume needs, each written atomically."""
        ckpt_files.write_csv(self.out, self.record.rows)
        ckpt_files.save_checkpoint(self.out, {
            "run_id": self.cfg.run_id, "epoch": epoch + 1, "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(), "data_rng": self.gen.get_state(),
            "torch_rng": torch.get_rng_state(), **self.record.checkpoint(), "wall_s": self.wall_s()})

    def finish(self) -> RunResult:
        """Test the best checkpoint and assemble the result (and write it, with ``out``)."""
        cfg, test_acc = self.cfg, None
        if self.record.best is not None:  # the reference's "No checkpoints found" -> test_acc -1; here None
            self.model.load_state_dict(self.record.best)
            test_x = accel.as_input(self.data.test.x.to(self.device), cfg.channels_last)
            _, test_acc = evaluate(self.model, test_x, self.data.test.y.to(self.device), autocast=self.amp)
        result = self.record.result(cfg, test_acc, self.wall_s(), env(self.device, cfg.seed))
        if self.out is not None:
            ckpt_files.write_csv(self.out, self.record.rows)
            ckpt_files.write_result(self.out, result)
        return result
