"""`wninit diagnose` (`MODULE:FACTORY --input-shape ...` or `--arch A --depth D`): how the signal travels
through a model at initialization, forward and backward, per scheme.

For your own model (or one of the paper's with `--arch`): initializes it by each scheme of `--scheme`, feeds a
batch of Gaussian inputs and prints the forward and backward norm ratios at every measuring point (the
points structure discovery finds, or the ones the paper's models mark), for a Gaussian output cotangent
(docs/method.md §7.1). Nothing is written without `--out`; with it, `propagation_<scheme>.csv` per scheme
and `signal_propagation.png` with all of them.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from wninit.errors import UserError
from wninit.suite.cli.model_args import add_model_arguments, model_width
from wninit.suite.cli.user_model import add_target_arguments, example_input, load_model

__all__ = ["add_arguments", "run"]

USER_SCHEMES = ("proposed", "pytorch-default")  # your model: the proposed init beside PyTorch's default WN init
ARCH_SCHEME = "proposed"

HELP = "print per-layer forward/backward norm ratios of a model at init"  # its line in `wninit --help`


def add_arguments(p: argparse.ArgumentParser) -> None:
    from wninit.models import NORMS
    from wninit.init.schemes import DATA_FREE_SCHEMES

    add_target_arguments(p, shape_required=False, shape_help="one sample's shape (no batch dimension), e.g. 80,32 "
                         "for a mel vocoder; required for MODULE:FACTORY, for --arch 1,28,28 (mlp) or 3,32,32")
    add_model_arguments(p, required=False)
    p.add_argument("--norm", choices=NORMS, default="wn", help="--arch: wn, bn or none (default wn)")
    p.add_argument("--scheme", default=None, metavar="S1,S2", help=f"the schemes to compare, from {', '.join(DATA_FREE_SCHEMES)} "
                   f"(default: {','.join(USER_SCHEMES)} for MODULE:FACTORY, {ARCH_SCHEME} for --arch)")
    p.add_argument("--batch", type=int, default=16, help="Gaussian input samples (default 16)")
    p.add_argument("--classes", type=int, default=10, help="--arch: output classes (default 10)")
    p.add_argument("--seed", type=int, default=0, help="seed of the inputs, the directions and the cotangent (default 0)")
    p.add_argument("--out", metavar="DIR", help="write propagation_<scheme>.csv and signal_propagation.png here "
                   "(created); without it nothing is written")


def run(args) -> int:
    if args.batch < 1:
        raise UserError(f"--batch must be at least 1, got {args.batch}")
    if args.target:
        return _run_user_model(args)
    if args.arch is None or args.depth is None:
        raise UserError("give your model as MODULE:FACTORY with --input-shape, or one of the paper's with --arch and --depth")
    return _run_paper_model(args)


def _schemes(text: str | None, default) -> list[str]:
    from wninit.init.schemes import DATA_FREE_SCHEMES

    if text is None:
        return list(default)
    names = [s.strip() for s in text.split(",") if s.strip()]
    bad = [s for s in names if s not in DATA_FREE_SCHEMES]
    if not names or bad:
        raise UserError(f"--scheme takes names from {', '.join(DATA_FREE_SCHEMES)} (comma-separated), got {text!r}")
    return names


def _run_user_model(args) -> int:
    import torch

    from wninit.diagnostics import propagation
    from wninit.weightnorm.lifecycle import copy_model
    from wninit.init.schemes import initialize

    if args.input_shape is None:
        raise UserError("give --input-shape, one sample's shape without the batch dimension (e.g. 3,32,32)")
    schemes = _schemes(args.scheme, USER_SCHEMES)
    model = load_model(args.target)
    x = example_input(model, args.input_shape, batch=args.batch, seed=args.seed)
    tables = {}
    for scheme in schemes:
        twin = copy_model(model)
        # The batch is the example input: the model is traced by running it (docs/method.md §3.9).
        initialize(twin, scheme, direction=args.direction, generator=torch.Generator().manual_seed(args.seed),
                   example_inputs=x)
        tables[scheme] = propagation(twin, x, seed=args.seed)
    return _report(tables, args.target, args)


def _run_paper_model(args) -> int:
    import torch

    from wninit.diagnostics import propagation
    from wninit.models import build_model
    from wninit.init.schemes import REGISTRY, initialize

    in_shape = args.input_shape or ((1, 28, 28) if args.arch == "mlp" else (3, 32, 32))
    gen = torch.Generator().manual_seed(args.seed)
    x = torch.randn((args.batch,) + tuple(in_shape), generator=gen)
    tables = {}
    for scheme in _schemes(args.scheme, (ARCH_SCHEME,)):
        model = build_model(args.arch, in_shape=in_shape, num_classes=args.classes, depth=args.depth,
                            width=model_width(args), k=args.k, norm=args.norm)
        initialize(model, scheme, direction=args.direction, batch=x if REGISTRY[scheme].data else None,
                   generator=torch.Generator().manual_seed(args.seed))
        tables[scheme] = propagation(model, x, seed=args.seed)
    return _report(tables, f"{args.arch} depth {args.depth}, {args.norm}", args)


def _report(tables: dict, title: str, args) -> int:
    """Each scheme's table printed; with `--out`, its CSV and the plot of all of them, and nothing otherwise."""
    for scheme, table in tables.items():
        print(f"{title}, {scheme} ({args.direction})")
        print(table)
    if args.out:
        from wninit.diagnostics.plot import plot_signal_propagation

        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        csvs = [table.to_csv(out / f"propagation_{scheme}.csv") for scheme, table in tables.items()]
        png = plot_signal_propagation(tables, out / "signal_propagation.png", title=title)
        print(f"wrote {', '.join(map(str, csvs))} and {png}")
    return 0
