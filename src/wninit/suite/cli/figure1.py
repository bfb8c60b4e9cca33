"""`wninit figure1 --out DIR [--seed S] [--samples N] [--draws K]`: the paper's Figure 1 on synthetic data
(docs/method.md §7.1).

Writes `figure1.png` (the paper's 2x2 layout, the first network draw) and `figure1.csv` (columns
panel,init,width,index,mean,std,draw: every draw, which claims 1-3 are judged over).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from wninit.errors import UserError

__all__ = ["add_arguments", "run", "draw_rows", "CLAIM_DRAWS", "CLAIM_SAMPLES"]

# What `wninit reproduce` computes: claims 1-3 are about the expected curve, judged over 8 network draws
# (report/figure1_claims.py). 100 inputs per draw: the spread between networks (about 2% per layer at width 1000)
# dwarfs the inputs' sampling error at that count, and 8 draws of 1000 inputs would cost 4x as much.
CLAIM_DRAWS, CLAIM_SAMPLES = 8, 100

HELP = "reproduce the paper's Figure 1 (norm ratios on synthetic data)"  # its line in `wninit --help`


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, metavar="DIR", help="folder for figure1.png and figure1.csv (created)")
    p.add_argument("--seed", type=int, default=0, help="seed of inputs, widths and weights (default 0)")
    p.add_argument("--samples", type=int, default=1000, help="input samples per curve (default 1000, the paper's)")
    p.add_argument("--draws", type=int, default=1, help="network draws, seeds S..S+K-1 (default 1, the paper's figure; "
                   f"claims 1-3 are judged over {CLAIM_DRAWS})")


def _one_draw(seed: int, draw: int, samples: int, shape: dict) -> list:
    import torch

    from wninit.diagnostics.synthetic import figure1

    torch.set_num_threads(1)  # float64 matrix work: one thread per process, the draws side by side
    return [r._replace(draw=draw) for r in figure1(seed=seed + draw, samples=samples, **shape)]


def draw_rows(seed: int, samples: int, draws: int, workers: int = 2, **shape) -> list:
    """Figure 1's rows for `draws` network draws (`figure1(seed=seed, draws=draws, samples=samples, **shape)`),
    computed side by side in `workers` processes; the rows are the same whatever `workers` is."""
    if draws == 1 or workers == 1:
        from wninit.suite.train.runtime import num_threads

        with num_threads(1):
            return [r for d in range(draws) for r in _one_draw(seed, d, samples, shape)]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(min(workers, draws), mp_context=multiprocessing.get_context("spawn")) as pool:
        parts = pool.map(_one_draw, [seed] * draws, range(draws), [samples] * draws, [shape] * draws)
        return [r for part in parts for r in part]


def run(args) -> int:
    from wninit.diagnostics.plot import plot_figure1
    from wninit.diagnostics.synthetic import rows_to_csv

    for name in ("samples", "draws"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name} must be at least 1, got {getattr(args, name)}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {str(out)!r} is a file: give a folder for figure1.png and figure1.csv")
    out.mkdir(parents=True, exist_ok=True)
    rows = draw_rows(args.seed, args.samples, args.draws)
    csv_path = rows_to_csv(rows, out / "figure1.csv")
    png_path = plot_figure1(rows, out / "figure1.png")
    print(f"wrote {png_path} and {csv_path} ({len(rows)} rows, seed {args.seed}, {args.samples} samples, "
          f"{args.draws} draw{'s' * (args.draws > 1)})")
    return 0
