"""The model arguments that `wninit diagnose` and `wninit hessian` share: which network to build at init."""
from __future__ import annotations

__all__ = ["add_model_arguments", "model_width"]


def add_model_arguments(p, required: bool = True) -> None:
    """`--arch --depth --width --k --direction` on parser `p`."""
    from wninit.init.gains import DIRECTIONS
    from wninit.models import ARCHS

    p.add_argument("--arch", required=required, choices=ARCHS)
    p.add_argument("--depth", required=required, type=int, help="MLP/CNN layers, ResNet 6N+2, WRN 6N+4")
    p.add_argument("--width", type=int, default=None, help="MLP/CNN width (default 128), ResNet first-stage width (16)")
    p.add_argument("--k", type=int, default=1, help="WRN widening factor (default 1)")
    p.add_argument("--direction", choices=DIRECTIONS, default="orthogonal")


def model_width(args) -> int:
    """`--width`, or its default: 16 for a ResNet's first stage, 128 for the MLP/CNN (WRNs ignore it)."""
    return args.width or (16 if args.arch == "resnet" else 128)
