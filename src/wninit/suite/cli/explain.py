"""`wninit explain MODULE:FACTORY [--input-shape C,H,W] [--scheme S]`: what initialize does to your model.

Prints one row per weight-normed layer: its role, whether it was declared, discovered or defaulted, the rule
that set gamma, the fans, gamma and g (docs/method.md §3.7). With `--input-shape` a batch of that shape is the
example input: the model is traced by running it and the gain column says which g were measured on it
(docs/method.md §3.9, §3.10). The model is not changed.
"""
from __future__ import annotations

import argparse

from wninit.suite.cli.user_model import add_target_arguments, example_input, load_model

__all__ = ["add_arguments", "run"]

HELP = "print what initialize sets on every WN layer of your model"  # its line in `wninit --help`


def add_arguments(p: argparse.ArgumentParser) -> None:
    from wninit.init.gains import DIRECTIONS
    from wninit.init.schemes import WN_SCHEMES, DATA_FREE_SCHEMES

    add_target_arguments(p, shape_required=True)
    p.add_argument("--scheme", choices=tuple(s for s in WN_SCHEMES if s in DATA_FREE_SCHEMES), default="proposed")
    p.add_argument("--direction", choices=DIRECTIONS, default="orthogonal")
    p.add_argument("--plot", metavar="FILE.png", help="also save the table as a figure of the model's stages: "
                   "one bar per layer's g, coloured by how its gamma was set")
    p.add_argument("--wide", action="store_true", help="every column in full (the default fits 100 columns, with "
                   "the rules as codes explained below the table)")


def run(args) -> int:
    from wninit.init.explain import explain

    model = load_model(args.target)
    x = example_input(model, args.input_shape) if args.input_shape is not None else None
    table = explain(model, args.scheme, direction=args.direction, wide=args.wide, example_inputs=x)
    if args.plot:
        from wninit.diagnostics.plot import plot_explain

        print(f"wrote {plot_explain(table, args.plot, title=args.target)}")
    return 0
