"""``fit(cfg)``: one run of the reference protocol (docs/method.md §6.1).

seed -> data (seeded validation split) -> model -> init (datadep on the first shuffled, augmented training
batch, docs/method.md §4) -> SGD epochs (schedule + per-iteration warmup, gradient accumulation) -> validation each
epoch -> the best-validation state evaluated on test. A NaN/Inf training loss is a result (status
``diverged``), never an exception. With ``out_dir``, every epoch leaves an atomic checkpoint from which
a rerun continues bit for bit on CPU, and ``result.json`` appears only when the run is over.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import math
import platform
import time
import warnings
from pathlib import Path

import torch

from ..errors import UserError
from . import accel
from . import checkpoint as ckpt_files
from .config import RunConfig
from .loop import evaluate, train_epoch
from .result import RunResult
from .schedules import epoch_lrs, scheduled_lr

__all__ = ["fit", "resolve_device", "derived_seed", "hessian_batch_count", "num_threads"]


def resolve_device(name: str) -> torch.device:
    """``"auto"`` picks cuda > mps > cpu; a device this machine lacks is a :class:`UserError`."""
    cuda, mps = torch.cuda.is_available(), torch.backends.mps.is_available()
    if name == "auto":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    if (name == "cuda" and not cuda) or (name == "mps" and not mps):
        raise UserError(f"device {name!r} is not available on this machine; use device 'cpu' or 'auto'")
    return torch.device(name)


def derived_seed(seed: int, purpose: str) -> int:
    """An independent 63-bit seed per purpose ("data", "init"), so data order and init never share a stream."""
    return int.from_bytes(hashlib.sha256(f"{seed}/{purpose}".encode()).digest()[:8], "little") >> 1


def hessian_batch_count(hessian_batches: float | int, n_batches: int) -> int:
    """Batches the Hessian is averaged over: a fraction f takes floor(f * n) of the epoch's n batches
    (the reference's stop rule with f = 0.1, docs/method.md §7.6), at least 1; an int is a count, at most n."""
    if isinstance(hessian_batches, float):
        return max(1, min(n_batches, math.floor(hessian_batches * n_batches + 1e-9)))
    return min(n_batches, hessian_batches)


@contextlib.contextmanager
def num_threads(threads: int | None):
    """Run the block with ``threads`` torch threads (None: unchanged), restoring the count after."""
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _param_groups(model: torch.nn.Module, exempt: bool, weight_decay: float) -> list[dict]:
    """One group (the reference: decay on every parameter, docs/method.md §6.1), or two with g, BN weights and
    biases exempt from weight decay (they set scales and shifts, not directions)."""
    if not exempt or weight_decay == 0:
        return [{"params": list(model.parameters())}]
    from ..weightnorm import gain_parameters

    scales = {id(p) for p in gain_parameters(model)}
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.affine:
            scales.add(id(m.weight))
    no_decay = [p for n, p in model.named_parameters() if id(p) in scales or n.endswith("bias")]
    ids = {id(p) for p in no_decay}
    return [{"params": [p for p in model.parameters() if id(p) not in ids]},
            {"params": no_decay, "weight_decay": 0.0}]


class _Bar:
    """A rich progress bar over epochs when asked for and installed; otherwise nothing."""

    def __init__(self, enabled: bool, total: int, done: int, label: str):
        self._progress = None
        if not enabled:
            return
        try:
            from rich.console import Console
            from rich.progress import Progress
        except ImportError:
            return
        # stderr, and gone when done: stdout keeps only the run's one-line summary
        self._progress = Progress(console=Console(stderr=True), transient=True)
        self._progress.start()
        self._task = self._progress.add_task(label, total=total, completed=done)

    def epoch(self, row: dict) -> None:
        if self._progress is not None:
            val = "n/a" if row["val_acc"] is None else f"{100 * row['val_acc']:.1f}%"
            self._progress.update(self._task, advance=1, description=f"epoch {row['epoch']} val {val}")

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()


def _tensorboard(enabled: bool, out: Path | None):
    if not enabled or out is None:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        warnings.warn("TensorBoard logging needs the tensorboard package (pip install tensorboard); skipped",
                      stacklevel=3)
        return None
    return SummaryWriter(str(out / "tb"))


def _env(device: torch.device, seed: int) -> dict:
    from .. import __version__
    return {"wninit": __version__, "torch": torch.__version__, "python": platform.python_version(),
            "device": str(device), "seed": seed, "threads": torch.get_num_threads()}


def _clone_state(model: torch.nn.Module) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _load_data(cfg: RunConfig):
    from ..data import load_dataset

    data = load_dataset(cfg.dataset, root=cfg.data_root, download=cfg.download, val_fraction=cfg.val_fraction,
                        seed=cfg.seed)
    n = len(data.train)
    if cfg.batch_size > n:
        raise UserError(f"batch_size {cfg.batch_size} is larger than the {n}-sample training split of "
                        f"{cfg.dataset}; use a batch size of at most {n}")
    return data


def fit(cfg: RunConfig, *, out_dir: str | Path | None = None, resume: bool = True, progress: bool = False,
        on_epoch=None, tensorboard: bool = False) -> RunResult:
    """Run ``cfg`` and return its :class:`RunResult` (docs/method.md §6.1).

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
        raise UserError(f"fit needs a wninit.train.RunConfig, got {type(cfg).__name__}")
    cfg = cfg.resolved()
    run_id, device = cfg.run_id, resolve_device(cfg.device)
    out = Path(out_dir) if out_dir is not None else None
    if out is not None and resume:
        finished = ckpt_files.read_result(out, run_id)
        if finished is not None:
            return finished
    with num_threads(cfg.threads):
        return _fit(cfg, run_id, device, out, resume, progress, on_epoch, tensorboard)


def _fit(cfg, run_id, device, out, resume, progress, on_epoch, tensorboard) -> RunResult:
    from ..models import build_model
    from ..data import Loader
    from ..schemes import initialize

    started = time.perf_counter()
    torch.manual_seed(cfg.seed)  # docs/method.md §6.1 set_seed: the head keeps PyTorch's default init from this stream
    data = _load_data(cfg)  # data faults raise here, before any file is touched
    if out is not None and not resume:
        ckpt_files.clear_run_files(out)
    state = ckpt_files.load_checkpoint(out, run_id) if out is not None and resume else None

    model = build_model(cfg.arch, in_shape=data.in_shape, num_classes=data.num_classes, depth=cfg.depth,
                        width=cfg.width, k=cfg.k, norm=cfg.norm, reduced_memory=cfg.reduced_memory,
                        bn_reference=cfg.bn_reference).to(device)
    gen = torch.Generator(device).manual_seed(derived_seed(cfg.seed, "data"))
    loader = Loader(data.train, cfg.loader_batch_size, shuffle=True, crop=4 if cfg.crop else 0, flip=cfg.flip,
                    cutout=cfg.cutout, generator=gen, device=device)
    if state is None or cfg.peer != "none":
        # docs/method.md §4: the reference draws one shuffled, augmented training batch for every scheme (datadep
        # uses it); drawing it always keeps the data order of a seed the same across schemes.
        first_x, _ = next(iter(loader))
        initialize(model, cfg.scheme, direction=cfg.direction, batch=first_x if cfg.scheme == "datadep" else None,
                   generator=torch.Generator(device).manual_seed(derived_seed(cfg.seed, "init")),
                   stem_gamma=cfg.stem_gamma)
        model = _apply_peer(cfg, model, first_x, device)  # a resumed run rebuilds its peer's modules too
    if cfg.task == "hessian":
        return _hessian(cfg, run_id, device, model, loader, out, started)

    model = accel.to_memory_format(model, cfg.channels_last)  # before the optimizer holds the parameters
    optimizer = torch.optim.SGD(_param_groups(model, cfg.wd_exempt_gain_bias, cfg.weight_decay), lr=cfg.lr,
                                momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    rows, best, best_epoch, best_val, start_epoch, wall_before = [], None, None, None, 0, 0.0
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        gen.set_state(state["data_rng"])
        torch.set_rng_state(state["torch_rng"])
        rows, best, best_epoch, best_val = state["rows"], state["best"], state["best_epoch"], state["best_val"]
        start_epoch, wall_before = state["epoch"], state["wall_s"]

    val_x, val_y = accel.as_input(data.val.x.to(device), cfg.channels_last), data.val.y.to(device)
    n_batches, diverged_at = len(loader), None
    # One finiteness check per step costs nothing on CPU; on an accelerator it would sync every step.
    check_every = 1 if device.type == "cpu" else 32
    amp = functools.partial(accel.autocast, cfg.precision, device)
    trained = accel.training_module(model, cfg.compile)  # shares model's parameters
    bar = _Bar(progress, cfg.epochs, start_epoch, f"run {run_id}")
    tb = _tensorboard(tensorboard, out)
    try:
        for epoch in range(start_epoch, cfg.epochs):
            train_loss, train_acc, bad_step = train_epoch(trained, optimizer, loader, epoch_lrs(cfg, epoch, n_batches),
                                                          cfg.accumulation_steps, check_every, autocast=amp,
                                                          channels_last=cfg.channels_last)
            if bad_step is not None:  # docs/method.md §6.1: stop; the best checkpoint so far still gets tested
                diverged_at = {"epoch": epoch, "step": bad_step}
                break
            val_loss, val_acc = evaluate(model, val_x, val_y, autocast=amp)
            rows.append({"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss, "train_acc": train_acc,
                         "val_acc": val_acc, "lr": scheduled_lr(cfg.lr, cfg.epochs, cfg.schedule, epoch)})
            # docs/method.md §6.1: strictly better validation accuracy (the first of equals wins); no validation
            # split -> the last epoch
            if val_acc is None or best_val is None or val_acc > best_val:
                best, best_epoch, best_val = _clone_state(model), epoch, val_acc
            if out is not None:
                ckpt_files.write_csv(out, rows)
                ckpt_files.save_checkpoint(out, {
                    "run_id": run_id, "epoch": epoch + 1, "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(), "data_rng": gen.get_state(),
                    "torch_rng": torch.get_rng_state(), "rows": rows, "best": best, "best_epoch": best_epoch,
                    "best_val": best_val, "wall_s": wall_before + time.perf_counter() - started})
            if tb is not None:
                for key, value in rows[-1].items():
                    if key != "epoch" and value is not None:
                        tb.add_scalar(key, value, epoch)
            bar.epoch(rows[-1])
            if on_epoch is not None:
                on_epoch(dict(rows[-1]))
    finally:
        bar.close()
        if tb is not None:
            tb.close()

    test_acc = None
    if best is not None:  # the reference's "No checkpoints found" -> test_acc -1; here None
        model.load_state_dict(best)
        test_x = accel.as_input(data.test.x.to(device), cfg.channels_last)
        _, test_acc = evaluate(model, test_x, data.test.y.to(device), autocast=amp)
    best_row = rows[best_epoch] if best_epoch is not None else None
    result = RunResult(run_id=run_id, status="diverged" if diverged_at else "completed", test_acc=test_acc,
                       best_val_acc=best_val, best_epoch=best_epoch,
                       train_acc=best_row["train_acc"] if best_row else None, diverged_at=diverged_at,
                       epochs_done=len(rows), wall_s=wall_before + time.perf_counter() - started, epochs=rows,
                       config=cfg.to_dict(), env=_env(device, cfg.seed))
    if out is not None:
        ckpt_files.write_csv(out, rows)
        ckpt_files.write_result(out, result)
    return result


def _apply_peer(cfg, model, batch, device):
    """The run's normalizer-free peer (``cfg.peer``, :mod:`wninit.peers`) after the scheme; the model to train."""
    if cfg.peer == "none":
        return model
    from ..peers import apply, parse_peer

    name, options = parse_peer(cfg.peer)
    generator = torch.Generator(device).manual_seed(derived_seed(cfg.seed, "peer"))
    return apply(model, name, batch=batch, generator=generator, **options).to(device)


def _hessian(cfg, run_id, device, model, loader, out, started) -> RunResult:
    """task="hessian": the log (natural) spectral norm of the loss Hessian at init, no training (docs/method.md §7.6).

    The batches are the first ``hessian_batch_count`` of a shuffled, augmented epoch, with ``model.train()``
    as the reference; unlike the reference, the same batches serve every power iteration.
    """
    from ..diagnostics import hessian as hessian_module  # the module: patchable, whatever the package exports

    model.train()
    count = hessian_batch_count(cfg.hessian_batches, len(loader))
    batches = [b for _, b in zip(range(count), loader)]
    value = float(hessian_module.hessian_spectral_norm(model, batches, iters=cfg.hessian_iters, seed=cfg.seed))
    finite = math.isfinite(value) and value != 0
    result = RunResult(run_id=run_id, status="completed" if finite else "diverged",
                       log_hessian_norm=math.log(abs(value)) if finite else None,
                       diverged_at=None if finite else {"epoch": 0, "step": 0},
                       wall_s=time.perf_counter() - started, config=cfg.to_dict(), env=_env(device, cfg.seed))
    if out is not None:
        ckpt_files.write_result(out, result)
    return result

