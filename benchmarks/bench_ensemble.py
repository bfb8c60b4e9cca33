"""Batched small models: 16 MLP runs as one stacked model vs the loop of 16 standalone ``fit`` runs.

The runs: WN MLPs of width 128 and depth 10 on the embedded real MNIST (mnist5k), the same data and
hyper-parameters but 16 seeds and 4 learning rates (momentum 0.9, scheme "proposed"). Side by side in
one process, on the same torch thread count (2 by default):

- ``ensemble``: :func:`wninit.sweep.ensemble.fit_ensemble` on the 16 configs;
- ``sequential``: ``[fit(cfg) for cfg in cfgs]``.

Each side is timed whole (data, init, training, validation, test), as a sweep sees it, in alternating
order per repeat; the table gives the medians over repeats of wall time and of this process's CPU time
(the latter is less sensitive to other processes on the machine), runs per hour and training samples
per second, and checks that both sides give the same test accuracies. Both sides are also run with one
epoch more: the difference is the time per epoch (training + validation) and the rest is the fixed
part (data, init, test), so the table shows where each side spends its time. Target: ensemble >= 1.7x.

Run: ``python benchmarks/bench_ensemble.py [--quick] [--out DIR]``; ``run(quick) -> dict``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import torch

from wninit.sweep.ensemble import fit_ensemble
from wninit.train import RunConfig, fit

MEMBERS, WIDTH, DEPTH, LRS = 16, 128, 10, (0.003, 0.01, 0.03, 0.1)
TARGET = 1.7


def configs(epochs: int, threads: int) -> list[RunConfig]:
    base = RunConfig(dataset="mnist5k", arch="mlp", depth=DEPTH, width=WIDTH, epochs=epochs, momentum=0.9,
                     threads=threads)
    return [base.replace(seed=1 + m, lr=LRS[m % len(LRS)]) for m in range(MEMBERS)]


def _timed(fn):
    start, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - start, time.process_time() - cpu


def _measure(epochs: int, threads: int, repeats: int) -> tuple[dict, dict]:
    """Median (wall, CPU) seconds of each side over ``repeats``, and each side's last results."""
    cfgs = configs(epochs, threads)
    sides = {"ensemble": lambda: fit_ensemble(cfgs), "sequential": lambda: [fit(c) for c in cfgs]}
    times, results = {name: [] for name in sides}, {}
    for r in range(repeats):  # alternate the order so that drifts in the machine's load hit both sides
        for name in (("ensemble", "sequential") if r % 2 == 0 else ("sequential", "ensemble")):
            results[name], wall, cpu = _timed(sides[name])
            times[name].append((wall, cpu))
    return times, results


def run(quick: bool = False, repeats: int | None = None, threads: int = 2) -> dict:
    """Both sides at ``epochs`` (quick: 1 epoch, 3 repeats; else 3 epochs, 5 repeats), and at one epoch
    more, so that the time splits into a fixed part (data, init, test) and a per-epoch part (training,
    validation): per epoch = T(epochs + 1) - T(epochs)."""
    epochs, repeats = (1, repeats or 3) if quick else (3, repeats or 5)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        fit(configs(1, threads)[0])  # warm-up: imports, data cache, allocator
        times, results = _measure(epochs, threads, repeats)
        times_more, _ = _measure(epochs + 1, threads, repeats)
    finally:
        torch.set_num_threads(before)
    samples = MEMBERS * epochs * 3600  # mnist5k: 3,600 training samples per epoch and run
    out = {"benchmark": "ensemble", "quick": quick, "members": MEMBERS, "width": WIDTH, "depth": DEPTH,
           "epochs": epochs, "repeats": repeats, "threads": threads, "torch": torch.__version__,
           "machine": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
           "load_average": os.getloadavg()[0], "sides": {}}
    for name, ts in times.items():
        wall, cpu = statistics.median(t[0] for t in ts), statistics.median(t[1] for t in ts)
        more = statistics.median(t[0] for t in times_more[name])
        out["sides"][name] = {"wall_s": wall, "cpu_s": cpu, "walls": [t[0] for t in ts],
                              "runs_per_hour": MEMBERS * 3600 / wall, "samples_per_s": samples / wall,
                              "epoch_s": more - wall, "fixed_s": wall - epochs * (more - wall)}
    e, s = out["sides"]["ensemble"], out["sides"]["sequential"]
    out["speedup_wall"] = s["wall_s"] / e["wall_s"]
    out["speedup_cpu"] = s["cpu_s"] / e["cpu_s"]
    out["speedup_per_epoch"] = s["epoch_s"] / e["epoch_s"]
    out["speedup_fixed"] = s["fixed_s"] / e["fixed_s"]
    out["max_test_acc_diff"] = max(abs(a.test_acc - b.test_acc) for a, b in
                                   zip(results["ensemble"], results["sequential"]))
    out["statuses"] = [r.status for r in results["ensemble"]]
    return out


def table(result: dict) -> str:
    lines = [f"{result['members']} WN MLPs (width {result['width']}, depth {result['depth']}) on mnist5k, "
             f"{result['epochs']} epoch(s), median of {result['repeats']}, {result['threads']} torch threads, "
             f"load average {result['load_average']:.1f} on {result['cpu_count']} CPUs",
             f"{'side':<12}{'wall s':>9}{'CPU s':>9}{'runs/hour':>11}{'samples/s':>11}{'fixed s':>9}{'s/epoch':>9}"]
    for name, s in result["sides"].items():
        lines.append(f"{name:<12}{s['wall_s']:>9.2f}{s['cpu_s']:>9.2f}{s['runs_per_hour']:>11.0f}"
                     f"{s['samples_per_s']:>11.0f}{s['fixed_s']:>9.2f}{s['epoch_s']:>9.2f}")
    lines.append(f"speed-up {result['speedup_wall']:.2f}x wall, {result['speedup_cpu']:.2f}x CPU time "
                 f"(target >= {TARGET}x); per epoch {result['speedup_per_epoch']:.2f}x, fixed part (data, "
                 f"init, test) {result['speedup_fixed']:.2f}x")
    lines.append(f"max |test acc difference| between the sides: {result['max_test_acc_diff']:.4f}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 epoch, 3 repeats instead of 3 epochs, 5 repeats")
    parser.add_argument("--out", default="wninit-out/bench", help="folder for bench_ensemble.json")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--threads", type=int, default=2, help="torch threads on both sides")
    args = parser.parse_args(argv)
    result = run(args.quick, args.repeats, args.threads)
    print(table(result))
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "bench_ensemble.json")
    with open(path, "w") as f:
        json.dump(result, f, indent=2)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
