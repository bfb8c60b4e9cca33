"""A user's own model for `wninit explain` and `wninit diagnose`: `MODULE:FACTORY` and `--input-shape`."""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from pathlib import Path

from wninit.errors import UserError

__all__ = ["add_target_arguments", "load_model", "example_input", "input_shape"]


def input_shape(text: str) -> tuple[int, ...]:
    """`3,32,32` (or `3x32x32`): one sample's shape, the batch dimension excluded."""
    parts = text.replace("x", ",").split(",")
    shape = tuple(int(p) for p in parts) if all(p.strip().isdigit() for p in parts) else ()
    if not shape or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"give one sample's shape as positive integers like 3,32,32 or 784, not {text!r}")
    return shape


def add_target_arguments(p, *, shape_required: bool,
                         shape_help: str = "one sample's shape (no batch dimension), e.g. 80,32 for a mel vocoder") -> None:
    p.add_argument("target", nargs="?" if not shape_required else None, metavar="MODULE:FACTORY",
                   help="your model: a module (dotted name or .py file) and a function or class in it that "
                        "returns the nn.Module, e.g. mymodels.py:build_vocoder")
    p.add_argument("--input-shape", type=input_shape, default=None, metavar="C,H,W",
                   help=shape_help)


def _import(module: str):
    path = Path(module)
    try:
        if module.endswith(".py"):
            if not path.is_file():
                raise UserError(f"there is no file {module!r}: give MODULE:FACTORY with an existing .py file or a module name")
            spec = importlib.util.spec_from_file_location(path.stem, path)
            mod = importlib.util.module_from_spec(spec)
            sys.path.insert(0, str(path.resolve().parent))
            try:
                spec.loader.exec_module(mod)
            finally:
                sys.path.pop(0)
            return mod
        sys.path.insert(0, str(Path.cwd()))
        try:
            return importlib.import_module(module)
        finally:
            sys.path.pop(0)
    except UserError:
        raise
    except Exception as exc:  # the user's module failed to import: its error, in one sentence
        raise UserError(f"could not import {module!r} ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
                        "check the module name or path and that it imports on its own") from None


def load_model(target: str):
    """Import `MODULE:FACTORY` and call the factory with no arguments; the result must be an `nn.Module`."""
    from torch import nn

    module, sep, factory = (target or "").rpartition(":")
    if not sep or not module or not factory:
        raise UserError(f"give your model as MODULE:FACTORY (e.g. mymodels.py:build), not {target!r}")
    mod = _import(module)
    fn = getattr(mod, factory, None)
    if not callable(fn):
        raise UserError(f"{module!r} has no function or class {factory!r}: name one that returns your nn.Module")
    try:
        model = fn()
    except Exception as exc:
        raise UserError(f"{factory}() raised {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}; "
                        "the factory must build the model with no arguments") from None
    if not isinstance(model, nn.Module):
        raise UserError(f"{factory}() returned a {type(model).__name__}, not an nn.Module")
    return model


def example_input(model, shape: tuple[int, ...], batch: int = 2, seed: int = 0):
    """A Gaussian batch of `shape`, checked by one forward pass on a copy of the model (one sentence if rejected)."""
    import torch

    from wninit.weightnorm.lifecycle import copy_model

    x = torch.randn((batch,) + tuple(shape), generator=torch.Generator().manual_seed(seed))
    try:
        with torch.no_grad():
            copy_model(model)(x)
    except Exception as exc:
        raise UserError(f"the model rejected inputs of shape {tuple(x.shape)} ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0][:160] if str(exc) else ''}); give --input-shape as one sample's "
                        "shape without the batch dimension") from None
    return x
