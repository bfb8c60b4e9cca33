"""Print each zoo model's parameter count, weight-normed layer count and CPU forward+backward time.

Run from tests/: ``python -m zoo [--threads 1] [--repeats 5]``; the time is the best of the repeats.
"""
from __future__ import annotations

import argparse
import time

import torch

from . import ZOO, count_weight_normed


def forward_backward_seconds(model: torch.nn.Module, x: torch.Tensor, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        model.zero_grad()
        start = time.perf_counter()
        model(x).square().mean().backward()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{'model':<18} {'input':<18} {'params':>9} {'WN layers':>9} {'fwd+bwd ms':>10}")
    for name, (build, shape) in ZOO.items():
        torch.manual_seed(0)
        model = build()
        ms = 1e3 * forward_backward_seconds(model, torch.randn(shape), args.repeats)
        params = sum(p.numel() for p in model.parameters())
        print(f"{name:<18} {str(shape):<18} {params:>9,} {count_weight_normed(model):>9} {ms:>10.1f}")


if __name__ == "__main__":
    main()
