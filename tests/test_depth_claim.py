"""The paper's depth claim at CPU scale (docs/method.md §7.2, §9 claim 5): on real MNIST digits, a deep WN MLP trains
with the proposed init and not with PyTorch's default WN init.

Setting (stated, not tuned per depth): the embedded real MNIST (mnist5k: 3,600 train / 400 validation /
1,000 test), WN MLP of width 128, plain SGD with momentum 0.9, batch 128, no weight decay, constant lr,
seed 1, one torch thread (pinned: the thread count changes float summation order, hence the bits of the
result; the tests' xdist workers use one thread each anyway). The lr of each (scheme, depth) is the best by validation accuracy of the grid {0.001, 0.003};
its test accuracy is what is asserted:
- ``proposed`` (orthogonal v): >= 88% at depth 20 within 10 epochs, >= 70% at depth 50 within 20 epochs. The
  depth-50 run's last bits, and so its accuracy, depend on the CPU's instruction set (docs/reproducibility.md):
  measured 78.7% on an Intel Xeon (AVX-512 kernels) and 84.7% on an AMD EPYC (AVX2), so the bound keeps a margin
  of 0.087 below the lowest, far above what an init that fails to train reaches (chance is 10%);
- ``pytorch-default`` (orthogonal v, g = ||v||): <= 20% at depth 20 in the same 10 epochs (chance is 10%);
- ``datadep`` (Salimans & Kingma): >= 80% at depth 20 within 10 epochs. The paper's Figure 2 has it at about
  98% up to depth 20 and failing only from depth 100 (docs/method.md §7.2), so at depth 20 it must train; 0.80 is
  the quick-scale "trains" threshold of docs/method.md §9.5 (it reaches 86% here, against 9% for ``pytorch-default``).
"""
import time

import pytest

from wninit.suite.train import RunConfig, fit

LRS = (0.001, 0.003)
BASE = RunConfig(dataset="mnist5k", arch="mlp", width=128, norm="wn", direction="orthogonal", momentum=0.9,
                 batch_size=128, schedule=0, seed=1, threads=1)

CASES = [  # scheme, depth, epochs, bound on the selected run's test accuracy
    ("proposed", 20, 10, ">= 0.88"),
    ("proposed", 50, 20, ">= 0.70"),  # not 0.80: the run moves with the instruction set (docstring)
    ("pytorch-default", 20, 10, "<= 0.20"),
    ("datadep", 20, 10, ">= 0.80"),
]


def _best_by_validation(scheme, depth, epochs):
    results, cpu = [], []
    for lr in LRS:
        start = time.process_time()
        results.append((lr, fit(BASE.replace(scheme=scheme, depth=depth, epochs=epochs, lr=lr))))
        cpu.append(time.process_time() - start)
    for (lr, r), cpu_s in zip(results, cpu):
        acc = "n/a" if r.test_acc is None else f"{100 * r.test_acc:5.1f}%"
        val = "n/a" if r.best_val_acc is None else f"{100 * r.best_val_acc:5.1f}%"
        print(f"  {scheme:<16} depth {depth:>3}  {epochs:>2} epochs  lr {lr:<6} {r.status:<10} "
              f"val {val}  test {acc}  ({r.wall_s:.1f} s wall, {cpu_s:.1f} s CPU)")
    finished = [(lr, r) for lr, r in results if r.best_val_acc is not None]
    return max(finished, key=lambda item: item[1].best_val_acc) if finished else (None, results[0][1])


@pytest.mark.slow
@pytest.mark.parametrize("scheme,depth,epochs,bound", CASES, ids=[f"{s}-{d}" for s, d, _, _ in CASES])
def test_depth_claim(scheme, depth, epochs, bound):
    print()
    lr, best = _best_by_validation(scheme, depth, epochs)
    print(f"  -> {scheme} depth {depth}: lr {lr}, test accuracy {best.test_acc}, claim: {bound}")
    if bound.startswith(">="):
        assert best.status == "completed" and best.test_acc >= float(bound[3:])
    else:
        assert best.test_acc is not None and best.test_acc <= float(bound[3:])
