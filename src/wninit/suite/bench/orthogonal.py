"""Orthogonal directions of large layers: ``wninit``'s draw vs ``torch.nn.init.orthogonal_`` on the same shape.

Shapes: VGG-16's first classifier layer (``4096 x 25088``, the weight of ``Linear(25088, 4096)``) and its second
(``4096 x 4096``). Variants, interleaved (bench/common.py), at torch's thread count:

- ``wninit``: ``wninit.init.gains.orthogonal_directions_([w])``, what ``initialize`` runs. A layer this large
  (``wninit.init.orthogonal_blocks``) takes Cholesky QR in fixed tiles on single-thread workers where it is
  at least 4x wider than tall (the same bits at any thread count), else Householder on all threads;
- ``orthogonal_``: ``torch.nn.init.orthogonal_(w)``: one Gaussian draw, Householder QR on all threads.

Printed with each: the orthogonality error ``max |Q Q^T - I|`` of the result (rows or columns, whichever are
orthonormal) and the distance to ``orthogonal_``'s result from the same generator's draw (the same matrix in
exact arithmetic: Cholesky QR's R is Householder's sign-corrected R). ``--quick``: the first shape only,
2 rounds. Target (printed as a check):
``wninit`` no slower than ``orthogonal_`` on ``4096 x 25088``.
Run: ``python -m wninit.suite.bench.orthogonal [--quick] [--out DIR] [--threads N]``.
"""
from __future__ import annotations


import torch

from wninit.suite.bench.common import Table, machine, main, num_threads, report, summary, time_interleaved

from wninit.init.gains import orthogonal_directions_

SHAPES = {"VGG fc6 (4096 x 25088)": (4096, 25088), "VGG fc7 (4096 x 4096)": (4096, 4096)}
CHECKED = "VGG fc6 (4096 x 25088)"


def _orthogonality(w: torch.Tensor) -> float:
    small = min(w.shape)
    gram = w @ w.T if w.size(0) == small else w.T @ w
    return (gram - torch.eye(small)).abs().max().item()


def _row(name: str, shape: tuple[int, int], threads: int, rounds: int) -> dict:
    ours, theirs = torch.empty(shape), torch.empty(shape)
    variants = {"wninit": lambda: orthogonal_directions_([ours], torch.Generator().manual_seed(0)),
                "orthogonal_": lambda: torch.nn.init.orthogonal_(theirs, generator=torch.Generator().manual_seed(0))}
    with num_threads(threads):
        stats = {v: summary(s) for v, s in time_interleaved(variants, rounds, warmup=0).items()}
    return {"shape": name, "threads": threads, "stats": stats,
            "ratio": stats["wninit"]["median"] / stats["orthogonal_"]["median"],
            "error_wninit": _orthogonality(ours), "error_orthogonal_": _orthogonality(theirs),
            "distance": (ours - theirs).abs().max().item()}


def run(quick: bool = False, threads: int | None = None) -> dict:
    threads = threads or torch.get_num_threads()
    before = machine()
    shapes = {CHECKED: SHAPES[CHECKED]} if quick else SHAPES  # quick: the checked shape only
    rows = [_row(name, shape, threads, 2 if quick else 3) for name, shape in shapes.items()]
    return {"benchmark": "orthogonal", "quick": quick, "threads": threads, "machine": before,
            "load_average_after": machine()["load_average"], "rows": rows,
            "check_no_slower_on_fc6": all(r["ratio"] <= 1.0 for r in rows if r["shape"] == CHECKED)}


def tables(result: dict) -> list[Table]:
    cols = ["shape", "threads", "wninit", "orthogonal_", "wninit/orth", "max|QQ^T-I| wninit", "orthogonal_",
            "max|wninit-orth|", "spread"]
    rows = [[r["shape"], r["threads"], f"{r['stats']['wninit']['median']:.2f} s",
             f"{r['stats']['orthogonal_']['median']:.2f} s", f"{r['ratio']:.3f}", f"{r['error_wninit']:.1e}",
             f"{r['error_orthogonal_']:.1e}", f"{r['distance']:.1e}",
             f"{100 * max(s['spread'] for s in r['stats'].values()):.0f}%"] for r in result["rows"]]
    notes = [f"wninit no slower than torch.nn.init.orthogonal_ on {CHECKED}: {result['check_no_slower_on_fc6']}"]
    return [Table("Orthogonal directions of one large layer (median of rounds)", cols, rows, notes)]


def table(result: dict) -> str:
    return report(tables(result), result)


if __name__ == "__main__":
    raise SystemExit(main(run, table, "bench_orthogonal", __doc__.splitlines()[0], threads_flag=True))
