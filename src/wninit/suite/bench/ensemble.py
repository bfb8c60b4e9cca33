"""Batched small models: 16 MLP runs as one stacked model vs the loop of 16 standalone ``fit`` runs.

The runs: WN MLPs of width 128 and depth 10 on the embedded real MNIST (mnist5k), the same data and
hyper-parameters but 16 seeds and 4 learning rates (momentum 0.9, scheme "proposed"). Side by side in
one process, on the same torch thread count (2 by default):

- ``ensemble``: :func:`wninit.suite.sweep.ensemble.fit_ensemble` on the 16 configs;
- ``sequential``: ``[fit(cfg) for cfg in cfgs]``.

Two measurements:

1. whole runs (data, init, training, validation, test), as a sweep sees them, in alternating order per
   repeat: median and min over repeats of wall time and of this process's CPU time, runs per hour,
   training samples per second; both sides must give the same test accuracies;
2. the training step alone (forward, backward, SGD update with momentum) of the same 16 initialized
   models, stacked vs one after the other, in interleaved blocks of 5 steps: median and min ms per
   step of all 16 (the training alone, without data, init, validation and test).

Target: ensemble >= :data:`TARGET` (whole runs). On a shared machine the ratio depends on its load: each torch op
costs more when the machine is busy (OpenMP threads wait for a core), and the stacked model runs ~9x
fewer ops than 16 models, while the matmul arithmetic is the same on both sides; the load average is
printed with the numbers. Run: ``python -m wninit.suite.bench.ensemble [--quick] [--out DIR]``;
``run(quick) -> dict``.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
import torch.nn.functional as F

from wninit.suite.sweep.ensemble import fit_ensemble
from wninit.suite.train import RunConfig, fit

from wninit.suite.bench.common import Table, machine, report, write_json

MEMBERS, WIDTH, DEPTH, LRS, BATCH = 16, 128, 10, (0.003, 0.01, 0.03, 0.1), 128
# A stacked group of runs at least 1.7x faster than the same runs one by one (whole runs): below that, the
# batched path's extra code would not pay for itself in a sweep of small MLPs.
TARGET = 1.7


def configs(epochs: int, threads: int) -> list[RunConfig]:
    base = RunConfig(dataset="mnist5k", arch="mlp", depth=DEPTH, width=WIDTH, epochs=epochs, momentum=0.9,
                     threads=threads)
    return [base.replace(seed=1 + m, lr=LRS[m % len(LRS)]) for m in range(MEMBERS)]


def _timed(fn):
    start, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - start, time.process_time() - cpu


def _whole_runs(epochs: int, threads: int, repeats: int) -> tuple[dict, dict]:
    """(wall, CPU) seconds of each side per repeat, and each side's last results."""
    cfgs = configs(epochs, threads)
    sides = {"ensemble": lambda: fit_ensemble(cfgs), "sequential": lambda: [fit(c) for c in cfgs]}
    times, results = {name: [] for name in sides}, {}
    for r in range(repeats):  # alternate the order so that drifts in the machine's load hit both sides
        for name in (("ensemble", "sequential") if r % 2 == 0 else ("sequential", "ensemble")):
            results[name], wall, cpu = _timed(sides[name])
            times[name].append((wall, cpu))
    return times, results


def _steps(blocks: int) -> dict:
    """ms per training step of all 16 members, stacked vs one model after the other."""
    from wninit import initialize
    from wninit.models import MLP
    from wninit.suite.sweep.stacked import StackedMLP, StackedSGD
    from wninit.suite.sweep.stacked import member_losses

    torch.manual_seed(0)
    models = []
    for _ in range(MEMBERS):
        model = MLP(784, WIDTH, DEPTH, 10)
        initialize(model, "proposed")
        models.append(model)
    stacked = StackedMLP(models)
    sgd = StackedSGD(list(stacked.params), torch.full((MEMBERS,), 0.9), [torch.zeros(MEMBERS)] * len(stacked.kinds))
    opts = [torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9) for m in models]
    x, y = torch.randn(MEMBERS, BATCH, 784), torch.randint(0, 10, (MEMBERS, BATCH))
    lr = torch.full((MEMBERS,), 0.01)

    def ensemble():
        member_losses(stacked(x), y).sum().backward()
        sgd.step(lr)
        sgd.zero_grad()

    def sequential():
        for m, (model, opt) in enumerate(zip(models, opts)):
            F.cross_entropy(model(x[m]), y[m]).backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

    out = {"ensemble": [], "sequential": []}
    for r in range(blocks + 1):  # block 0 warms up
        for name, fn in (("ensemble", ensemble), ("sequential", sequential)):
            start = time.perf_counter()
            for _ in range(5):
                fn()
            if r:
                out[name].append((time.perf_counter() - start) / 5 * 1e3)
    return out


def run(quick: bool = False, repeats: int | None = None, threads: int = 2) -> dict:
    """Whole runs of ``epochs`` (quick: 1 epoch, 3 repeats; else 3 epochs, 5 repeats) and the step alone."""
    epochs, repeats = (1, repeats or 3) if quick else (3, repeats or 5)
    before, load_before = torch.get_num_threads(), round(os.getloadavg()[0], 2)
    torch.set_num_threads(threads)
    try:
        fit(configs(1, threads)[0])  # warm-up: imports, data cache, allocator
        times, results = _whole_runs(epochs, threads, repeats)
        steps = _steps(10 if quick else 20)
    finally:
        torch.set_num_threads(before)
    samples = MEMBERS * epochs * 3600  # mnist5k: 3,600 training samples per epoch and run
    out = {"benchmark": "ensemble", "quick": quick, "members": MEMBERS, "width": WIDTH, "depth": DEPTH,
           "epochs": epochs, "repeats": repeats, "threads": threads, "machine": {**machine(), "load_average": load_before},
           "load_average_after": round(os.getloadavg()[0], 2), "sides": {}}
    for name, ts in times.items():
        wall, cpu = statistics.median(t[0] for t in ts), statistics.median(t[1] for t in ts)
        step_ms = statistics.median(steps[name])
        out["sides"][name] = {"wall_s": wall, "wall_min_s": min(t[0] for t in ts), "cpu_s": cpu,
                              "walls": [t[0] for t in ts], "runs_per_hour": MEMBERS * 3600 / wall,
                              "samples_per_s": samples / wall, "step_ms": step_ms, "step_min_ms": min(steps[name])}
    e, s = out["sides"]["ensemble"], out["sides"]["sequential"]
    out["speedup_wall"] = s["wall_s"] / e["wall_s"]
    out["speedup_wall_min"] = s["wall_min_s"] / e["wall_min_s"]
    out["speedup_cpu"] = s["cpu_s"] / e["cpu_s"]
    out["speedup_step"] = s["step_ms"] / e["step_ms"]
    out["speedup_step_min"] = s["step_min_ms"] / e["step_min_ms"]
    out["max_test_acc_diff"] = max(abs(a.test_acc - b.test_acc) for a, b in
                                   zip(results["ensemble"], results["sequential"]))
    out["same_metrics"] = all(a.metrics() == b.metrics() for a, b in zip(results["ensemble"], results["sequential"]))
    return out


def tables(result: dict) -> list[Table]:
    """Both sides' whole runs and training step; the speed-ups and the metrics check as notes."""
    r = result
    rows = [[name, f"{s['wall_s']:.2f}", f"{s['wall_min_s']:.2f}", f"{s['cpu_s']:.2f}", f"{s['runs_per_hour']:.0f}",
             f"{s['samples_per_s']:.0f}", f"{s['step_ms']:.1f}", f"{s['step_min_ms']:.1f}"] for name, s in r["sides"].items()]
    notes = [f"whole runs: speed-up {r['speedup_wall']:.2f}x wall (median), {r['speedup_wall_min']:.2f}x (min), "
             f"{r['speedup_cpu']:.2f}x CPU time; target >= {TARGET}x",
             f"training step of all {r['members']}: speed-up {r['speedup_step']:.2f}x (median), "
             f"{r['speedup_step_min']:.2f}x (min)",
             f"same metrics on both sides: {r['same_metrics']} (max test accuracy difference {r['max_test_acc_diff']:.4f})"]
    return [Table(f"{r['members']} WN MLPs (width {r['width']}, depth {r['depth']}) on mnist5k, {r['epochs']} "
                  f"epoch(s), {r['repeats']} repeats, {r['threads']} torch threads",
                  ["side", "wall s", "min s", "CPU s", "runs/hour", "samples/s", "ms/step", "min ms/step"], rows, notes)]


def table(result: dict) -> str:
    return report(tables(result), result)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 epoch, 3 repeats instead of 3 epochs, 5 repeats")
    parser.add_argument("--out", default="wninit-out/bench", help="folder for bench_ensemble.json")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--threads", type=int, default=2, help="torch threads on both sides")
    args = parser.parse_args(argv)
    result = run(args.quick, args.repeats, args.threads)
    print(table(result))
    print(f"wrote {write_json(args.out, 'bench_ensemble', result)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
