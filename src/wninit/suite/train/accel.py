"""The accelerator options of a run: `precision`, `channels_last` and `compile`.

All three are off by default, and the CPU reproduction of the paper uses none of them. On a GPU:

- `precision="bf16"` runs the forward pass and the loss under `torch.autocast(dtype=bfloat16)`;
  parameters, gradients and the SGD update stay float32 (the usual mixed-precision recipe). bf16 has
  float32's exponent range, so no loss scaling is needed. It changes results, so it is part of the
  run id (see `RunConfig.run_id`).
- `channels_last` stores conv weights and input batches in NHWC, the layout tensor cores want; the
  arithmetic is the same, so it is an execution field like `device`.
- `compile` trains through `torch.compile(model)`; worth it for long runs only (the first steps
  pay for the compilation). The eager module keeps the parameters, so checkpoints, evaluation and the
  state dict are unchanged. Execution field too: results equal eager ones to float rounding.

The Hessian task runs in float32 eager autograd (docs/method.md §7.6): it refuses bf16 and ignores the other two.
"""
from __future__ import annotations

import contextlib

import torch

__all__ = ["PRECISIONS", "COMPILE_OPTIONS", "autocast", "training_module", "to_memory_format", "as_input"]

PRECISIONS = ("fp32", "bf16")  # what RunConfig.precision accepts: float32, or bf16 autocast (see :func:`autocast`)
COMPILE_OPTIONS: dict = {}  # keyword arguments of torch.compile; tests swap in a backend without a C++ build


def autocast(precision: str, device: torch.device):
    """The context the forward pass and loss run in: bf16 autocast, or nothing for fp32."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def to_memory_format(model: torch.nn.Module, channels_last: bool) -> torch.nn.Module:
    """`model` with its 4-d parameters in channels_last when asked (others are left as they are)."""
    return model.to(memory_format=torch.channels_last) if channels_last else model


def training_module(model: torch.nn.Module, compile: bool):
    """What the training loop calls: `torch.compile(model)` when asked, else `model` itself.

    The compiled wrapper shares `model`'s parameters, so the optimizer, checkpoints and evaluation use
    `model` unchanged.
    """
    return torch.compile(model, **COMPILE_OPTIONS) if compile else model


def as_input(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """A 4-d batch made channels_last when asked (one copy on the device, cheap next to a step)."""
    return x.contiguous(memory_format=torch.channels_last) if channels_last and x.dim() == 4 else x
