"""``wninit diagnose --arch A --depth D [--scheme S] [--out DIR]``: forward/backward norm ratios at init.

Builds one of the paper's models, initializes it, feeds a batch of Gaussian inputs and prints
``||h_i||/||x||`` and ``||dL/dh_i||/||dL/dh_L||`` at every hidden ReLU (MLP, CNN) or residual block
(ResNet, WRN), for a Gaussian output cotangent (spec §7.1). With ``--out``: propagation.csv and .png.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import UserError
from .model_args import add_model_arguments, model_width

__all__ = ["add_parser", "run"]


def _shape(text: str) -> tuple[int, ...]:
    parts = text.replace("x", ",").split(",")
    shape = tuple(int(p) for p in parts) if all(p.strip().isdigit() for p in parts) else ()
    if not shape or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"give positive integers like 3,32,32 or 784, not {text!r}")
    return shape


def add_parser(subparsers):
    from ..schemes import SCHEMES

    p = subparsers.add_parser("diagnose", help="print per-layer forward/backward norm ratios of a model at init",
                              description=__doc__.split("\n\n")[0])
    add_model_arguments(p)
    p.add_argument("--norm", choices=("wn", "bn", "none"), default="wn")
    p.add_argument("--scheme", choices=SCHEMES, default="proposed")
    p.add_argument("--batch", type=int, default=16, help="Gaussian input samples (default 16)")
    p.add_argument("--in-shape", type=_shape, default=None, metavar="C,H,W",
                   help="input shape (default 1,28,28 for mlp, 3,32,32 otherwise)")
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", metavar="DIR", help="write propagation.csv and propagation.png here")
    return p


def run(args) -> int:
    import torch

    from ..diagnostics import propagation
    from ..models import build_model
    from ..schemes import initialize

    if args.batch < 1:
        raise UserError(f"--batch must be at least 1, got {args.batch}")
    in_shape = args.in_shape or ((1, 28, 28) if args.arch == "mlp" else (3, 32, 32))
    model = build_model(args.arch, in_shape=in_shape, num_classes=args.classes, depth=args.depth,
                        width=model_width(args), k=args.k, norm=args.norm)
    gen = torch.Generator().manual_seed(args.seed)
    x = torch.randn((args.batch,) + tuple(in_shape), generator=gen)
    initialize(model, args.scheme, direction=args.direction, batch=x if args.scheme == "datadep" else None,
               generator=torch.Generator().manual_seed(args.seed))
    table = propagation(model, x, seed=args.seed)
    title = f"{args.arch} depth {args.depth}, {args.norm}, {args.scheme} ({args.direction})"
    print(title)
    print(table)
    if args.out:
        from ..diagnostics.plot import plot_propagation

        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        csv_path = table.to_csv(out / "propagation.csv")
        png_path = plot_propagation(table, out / "propagation.png", title=title)
        print(f"wrote {csv_path} and {png_path}")
    return 0
