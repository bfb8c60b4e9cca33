"""`wninit convert CHECKPOINT --to torch|legacy|wninit|plain --out FILE`: a saved state dict under another
weight-norm API, or folded into plain weights.

The checkpoint is read with `torch.load(weights_only=True)`: a state dict, or a dict of them (as
HiFi-GAN saves `{"generator": ...}`), whose state dicts are each converted and the rest kept. The input
file is never written: `--out` must name another file, written atomically.
"""
from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path

from wninit.suite._files import atomic_path
from wninit.errors import UserError

__all__ = ["add_arguments", "run"]

HELP = "move a checkpoint's weight-norm parameters to another API, or fold them"  # its line in `wninit --help`


def add_arguments(p: argparse.ArgumentParser) -> None:
    from wninit.weightnorm.state_dict import TARGETS

    p.add_argument("checkpoint", metavar="CHECKPOINT", help="a file saved with torch.save (a state dict)")
    p.add_argument("--to", required=True, choices=TARGETS, help="the target layout: an API's keys, or plain weights")
    p.add_argument("--out", required=True, metavar="FILE", help="where to write the converted checkpoint")


def _is_state_dict(obj) -> bool:
    import torch

    return isinstance(obj, Mapping) and bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def _load(path: Path):
    import torch

    if not path.is_file():
        what = "is a folder" if path.is_dir() else "does not exist"
        raise UserError(f"checkpoint {str(path)!r} {what}; pass a file saved with torch.save")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except OSError:
        raise
    except Exception as err:  # noqa: BLE001 - a file that is no checkpoint fails in the unpickler in many ways
        detail = f"{type(err).__name__}: {str(err).strip().splitlines()[0][:100] if str(err).strip() else ''}"
        raise UserError(f"{str(path)!r} is not a checkpoint torch.load can read with weights_only=True ({detail}); "
                        "pass a state dict saved with torch.save") from None


def _save(obj, out: Path) -> None:
    import torch

    with atomic_path(out) as tmp:  # never a half file at --out
        torch.save(obj, tmp)


def run(args) -> int:
    from wninit.weightnorm.state_dict import _groups, convert_state_dict

    src, out = Path(args.checkpoint), Path(args.out)
    if out.exists() and src.exists() and out.resolve() == src.resolve():
        raise UserError(f"--out {args.out!r} is the input checkpoint, which convert never overwrites; "
                        "name another file")
    obj = _load(src)
    if _is_state_dict(obj):
        converted, names = convert_state_dict(obj, args.to), ["the state dict"]
    elif isinstance(obj, Mapping) and any(_is_state_dict(v) for v in obj.values()):
        names = [k for k, v in obj.items() if _is_state_dict(v)]
        converted = {k: convert_state_dict(v, args.to) if k in names else v for k, v in obj.items()}
        names = [repr(k) for k in names]
    else:
        raise UserError(f"{args.checkpoint!r} holds no state dict (a dict of tensors, or a dict of them); "
                        "save one with torch.save(model.state_dict(), path)")
    layers = sum(len(_groups(v, None)) for v in (obj.values() if names != ["the state dict"] else [obj])
                 if _is_state_dict(v))
    if layers == 0:
        raise UserError(f"{args.checkpoint!r} has no weight-normalized layer (no weight_g/weight_v, "
                        "parametrizations.weight.original0/1 or g/v keys): there is nothing to convert")
    if not out.parent.is_dir():
        raise UserError(f"--out {args.out!r} is in a folder that does not exist; create it first")
    _save(converted, out)
    print(f"converted {layers} weight-normalized layers ({', '.join(names)}) of {args.checkpoint} "
          f"to {args.to!r} weight norm in {args.out}")
    return 0
