"""`wninit diagnose` (`--arch A --depth D` or `MODULE:FACTORY --input-shape ...`): norm ratios at init.

For one of the paper's models: builds it, initializes it, feeds a batch of Gaussian inputs and prints
`||h_i||/||x||` and `||dL/dh_i||/||dL/dh_L||` at every hidden ReLU (MLP, CNN) or residual block (ResNet,
WRN), for a Gaussian output cotangent (docs/method.md §7.1); with `--out`: propagation.csv and .png.
For your own model: the same at the points structure discovery finds, for each of `--schemes`, and a
signal-propagation plot of all of them (`signal_propagation.png`) beside `propagation.csv` in `--out`.
"""
from __future__ import annotations

from pathlib import Path

from wninit.errors import UserError
from wninit.suite.cli.model_args import add_model_arguments, model_width
from wninit.suite.cli.user_model import add_target_arguments, example_input, input_shape, load_model

__all__ = ["add_parser", "run"]


def add_parser(subparsers):
    from wninit.models import NORMS
    from wninit.init.schemes import SCHEMES

    p = subparsers.add_parser("diagnose", help="print per-layer forward/backward norm ratios of a model at init",
                              description=__doc__.split("\n\n")[0])
    add_target_arguments(p, shape_required=False)
    add_model_arguments(p, required=False)
    p.add_argument("--norm", choices=NORMS, default="wn")
    p.add_argument("--scheme", choices=SCHEMES, default="proposed")
    p.add_argument("--schemes", default="proposed,pytorch-default", metavar="S1,S2",
                   help="your model: the schemes to compare (default proposed,pytorch-default)")
    p.add_argument("--batch", type=int, default=16, help="Gaussian input samples (default 16)")
    p.add_argument("--in-shape", type=input_shape, default=None, metavar="C,H,W",
                   help="input shape of --arch (default 1,28,28 for mlp, 3,32,32 otherwise)")
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", metavar="DIR", help="write propagation.csv and the plot here")
    return p


def run(args) -> int:
    if args.batch < 1:
        raise UserError(f"--batch must be at least 1, got {args.batch}")
    if args.target:
        return _run_user_model(args)
    if args.arch is None or args.depth is None:
        raise UserError("give your model as MODULE:FACTORY with --input-shape, or one of the paper's with --arch and --depth")
    return _run_paper_model(args)


def _schemes(text: str) -> list[str]:
    from wninit.init.schemes import DATA_FREE_SCHEMES

    names = [s.strip() for s in text.split(",") if s.strip()]
    bad = [s for s in names if s not in DATA_FREE_SCHEMES]
    if not names or bad:
        raise UserError(f"--schemes takes names from {', '.join(DATA_FREE_SCHEMES)}, got {text!r}")
    return names


def _run_user_model(args) -> int:
    import torch

    from wninit.diagnostics import propagation
    from wninit.weightnorm.lifecycle import copy_model
    from wninit.init.schemes import initialize

    if args.input_shape is None:
        raise UserError("give --input-shape, one sample's shape without the batch dimension (e.g. 3,32,32)")
    schemes = _schemes(args.schemes)
    model = load_model(args.target)
    x = example_input(model, args.input_shape, batch=args.batch, seed=args.seed)
    tables = {}
    for scheme in schemes:
        twin = copy_model(model)
        # The batch is the example input: the model is traced by running it (docs/method.md §3.9).
        initialize(twin, scheme, direction=args.direction, generator=torch.Generator().manual_seed(args.seed),
                   example_inputs=x)
        tables[scheme] = propagation(twin, x, seed=args.seed)
        print(f"{args.target}, {scheme} ({args.direction})")
        print(tables[scheme])
    out = Path(args.out or ".")
    out.mkdir(parents=True, exist_ok=True)
    from wninit.diagnostics.plot import plot_signal_propagation

    csvs = [tables[s].to_csv(out / f"propagation_{s}.csv") for s in schemes]
    png = plot_signal_propagation(tables, out / "signal_propagation.png", title=args.target)
    print(f"wrote {', '.join(map(str, csvs))} and {png}")
    return 0


def _run_paper_model(args) -> int:
    import torch

    from wninit.diagnostics import propagation
    from wninit.models import build_model
    from wninit.init.schemes import REGISTRY, initialize

    in_shape = args.in_shape or ((1, 28, 28) if args.arch == "mlp" else (3, 32, 32))
    model = build_model(args.arch, in_shape=in_shape, num_classes=args.classes, depth=args.depth,
                        width=model_width(args), k=args.k, norm=args.norm)
    gen = torch.Generator().manual_seed(args.seed)
    x = torch.randn((args.batch,) + tuple(in_shape), generator=gen)
    initialize(model, args.scheme, direction=args.direction, batch=x if REGISTRY[args.scheme].data else None,
               generator=torch.Generator().manual_seed(args.seed))
    table = propagation(model, x, seed=args.seed)
    title = f"{args.arch} depth {args.depth}, {args.norm}, {args.scheme} ({args.direction})"
    print(title)
    print(table)
    if args.out:
        from wninit.diagnostics.plot import plot_propagation

        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        csv_path = table.to_csv(out / "propagation.csv")
        png_path = plot_propagation(table, out / "propagation.png", title=title)
        print(f"wrote {csv_path} and {png_path}")
    return 0
