"""One forward pass with temporary forward hooks: what data-dependent inits (datadep, LSUV) are built on."""
from __future__ import annotations

from typing import Callable, Iterable

import torch
from torch import nn

__all__ = ["forward_with_hooks"]


def forward_with_hooks(model: nn.Module, batch,
                       hooks: Iterable[tuple[nn.Module, Callable]]) -> None:
    """Run `model(batch)` without gradients with each `(module, hook)` registered as a forward hook, and
    remove the hooks afterwards, whatever the forward raised (a hook may raise to stop the pass early).

    `batch` is a tensor, or any example input `wninit.structure.record.example_call` takes (a tuple of
    positional arguments, a dict of keyword arguments: `input_values=` for an audio model)."""
    from wninit.structure.record import example_call

    call = example_call(batch)
    handles = [m.register_forward_hook(fn) for m, fn in hooks]
    try:
        with torch.no_grad():
            call(model)
    finally:
        for h in handles:
            h.remove()
