"""Orthogonal directions of large layers: factored in fixed blocks on worker threads of one torch thread each.

[`wninit.init.gains.orthogonal_directions_`][] factors each layer's Gaussian draw on one LAPACK thread, several
layers side by side: on many small layers that is the fastest way, and a seed gives the same bits at any
thread count. A single large layer, a VGG classifier's `4096 x 25088` say, then ran on one thread where
`torch.nn.init.orthogonal_` uses them all. Above `LARGE_FLOPS` (no layer of the paper's models comes
near it: their gains and directions keep their bits) a layer takes one of two paths here instead:

- strongly rectangular (the long side at least `ASPECT` times the short one): Cholesky QR. For the
  `(k, n)` draw `A` with `k <= n/4`, `L = cholesky(A A^T)` and `Q = L^{-1} A`. `L^T` is the `R`
  of `A^T = Q^T R` with a positive diagonal, which makes it *the* sign-corrected QR that the one-thread
  path computes by Householder (docs/method.md §3.5a): the same matrix in exact arithmetic, the same
  distribution (Haar), other rounding. It runs as matrix products, fewer and faster flops than
  Householder's, in fixed tiles of the Gram matrix and fixed column blocks of the solve, each on one
  thread: the bits do not depend on the thread count. A Gaussian draw that wide has a condition number
  below about 3 (so `A A^T` below 9, and Q orthonormal to float rounding); a draw whose factor shows
  worse falls back to Householder.
- otherwise Householder QR on the calling thread with all of torch's threads, as `torch.nn.init.orthogonal_`
  does, and as it does rounding differently at different thread counts (~1e-7).
"""
from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import torch

__all__ = ["LARGE_FLOPS", "ASPECT", "is_large", "single_threaded", "cholesky_qr_"]

LARGE_FLOPS = 2 ** 34  # n k^2 of a (k, n) draw, k <= n: ~7x WRN-40-10's largest conv (640 x 5760, 2.4e9)
ASPECT = 4  # n >= 4k: a Gaussian (k, n) matrix then has a condition number of about 3 at most
_TILE = 1024  # Gram tiles and solve blocks: fixed sizes, so the rounding is the same at any thread count
_MAX_CONDITION = 10.0  # a Cholesky factor whose diagonal spreads more than this: Householder instead


def is_large(rows: int, cols: int) -> bool:
    """Whether a `(rows, cols)` draw takes this module's paths (see the module's docstring)."""
    k, n = min(rows, cols), max(rows, cols)
    return n * k * k >= LARGE_FLOPS


def single_threaded(tasks: list[Callable[[], None]], threads: int) -> None:
    """Run `tasks` on up to `threads` worker threads, each set to one torch thread; here when `threads < 2`.

    `torch.set_num_threads` sets the calling native thread's OpenMP and MKL counts, and also, whichever
    thread calls it, the count every thread started later begins with: after the workers, that one is
    put back to what a thread started before them got. The calling thread's own count is never touched.
    """
    if threads < 2:
        for task in tasks:
            task()
        return

    def one_thread(task):
        torch.set_num_threads(1)  # this worker's own count: each task rounds as at one thread
        with torch.no_grad():  # grad mode is per thread
            task()

    with ThreadPoolExecutor(min(threads, len(tasks)) or 1) as pool:
        started_with = pool.submit(torch.get_num_threads).result()  # a new thread's count, before any worker's 1
        try:
            list(pool.map(one_thread, tasks))  # re-raises a task's error
        finally:
            pool.submit(torch.set_num_threads, started_with).result()


def cholesky_qr_(flat: torch.Tensor, threads: int) -> bool:
    """Replace the Gaussian draw `flat` (2-d, `rows <= cols/ASPECT` or `cols <= rows/ASPECT`) by the Q of its
    sign-corrected QR, rows (or columns) orthonormal, in place; False (`flat` untouched) where the draw is too
    ill-conditioned for it."""
    wide = flat if flat.size(0) <= flat.size(1) else flat.t()  # (k, n), k <= n: a view, written through
    k = wide.size(0)
    starts = range(0, k, _TILE)
    gram = wide.new_zeros((k, k))

    def tile(i, j):  # the lower triangle, tile by tile, each a product over the whole long side
        gram[i:i + _TILE, j:j + _TILE] = wide[i:i + _TILE] @ wide[j:j + _TILE].t()

    single_threaded([lambda i=i, j=j: tile(i, j) for i in starts for j in starts if j <= i], threads)
    found = []
    single_threaded([lambda: found.append(torch.linalg.cholesky_ex(gram))], threads)  # one thread: same bits
    factor, info = found[0]
    diag = factor.diagonal()
    if info.item() != 0 or not bool(diag.min() > 0) or (diag.max() / diag.min()).item() > _MAX_CONDITION:
        return False

    def solve(c):  # Q = L^{-1} A, one fixed block of columns
        wide[:, c:c + _TILE] = torch.linalg.solve_triangular(factor, wide[:, c:c + _TILE], upper=False)

    single_threaded([lambda c=c: solve(c) for c in range(0, wide.size(1), _TILE)], threads)
    return True
