"""`task="hessian"`: a run that measures the loss Hessian's spectral norm at init instead of training
(docs/method.md §7.6). [`wninit.suite.train.fit`][wninit.suite.train.single_run.fit] builds and initializes the model as for training, then hands
it here.
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import torch

from wninit.suite.train import checkpoint as ckpt_files
from wninit.suite.train.config import RunConfig
from wninit.suite.train.result import RunResult
from wninit.suite.train.runtime import env

__all__ = ["hessian_batch_count", "run_hessian"]


def hessian_batch_count(hessian_batches: float | int, n_batches: int) -> int:
    """Batches the Hessian is averaged over: a fraction f takes floor(f * n) of the epoch's n batches
    (the reference's stop rule with f = 0.1, docs/method.md §7.6), at least 1; an int is a count, at most n."""
    if isinstance(hessian_batches, float):
        return max(1, min(n_batches, math.floor(hessian_batches * n_batches + 1e-9)))
    return min(n_batches, hessian_batches)


def run_hessian(cfg: RunConfig, device: torch.device, model: torch.nn.Module, loader, out: Path | None,
                started: float) -> RunResult:
    """The log (natural) spectral norm of the loss Hessian of the initialized `model`, as a RunResult
    (`diverged` when the norm is not finite or 0); written to `out/result.json` when `out` is given.

    The batches are the first `hessian_batch_count` of a shuffled, augmented epoch of `loader`,
    with `model.train()` as the reference; unlike the reference, the same batches serve every power
    iteration.
    """
    from wninit.diagnostics import hessian as hessian_module  # the module: patchable, whatever the package exports

    model.train()
    count = hessian_batch_count(cfg.hessian_batches, len(loader))
    batches = [b for _, b in zip(range(count), loader)]
    value = float(hessian_module.hessian_spectral_norm(model, batches, iters=cfg.hessian_iters, seed=cfg.seed))
    finite = math.isfinite(value) and value != 0
    result = RunResult(run_id=cfg.run_id, status="completed" if finite else "diverged",
                       log_hessian_norm=math.log(abs(value)) if finite else None,
                       diverged_at=None if finite else {"epoch": 0, "step": 0},
                       wall_s=time.perf_counter() - started, config=cfg.to_dict(), env=env(device, cfg.seed))
    if out is not None:
        ckpt_files.write_result(out, result)
    return result
