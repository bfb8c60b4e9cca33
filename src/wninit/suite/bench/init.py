"""Initialization time: ``wninit.initialize(model, "proposed")`` vs ``torch.nn.init.orthogonal_`` on the same layers.

Models: WRN-40-10 (the paper's CIFAR net, 36M parameters) and a 10,000-layer WN WRN (depth 10000 = 6N+4,
k = 1: 9,999 WN convs). Variants, interleaved (bench/common.py):

- ``initialize``: the library call, orthogonal directions (docs/method.md §3.5). It draws every direction in
  layer order from the one generator, then runs the QRs side by side on ``torch.get_num_threads()``
  Python threads, one LAPACK thread each (``wninit.init.gains.orthogonal_directions_``);
- ``initialize, traced``: the same call with ``discover=True``: the model is traced with torch.fx and its
  structure discovered (docs/method.md §3.7) although every layer declares its role, which is what a model
  without declared roles pays;
- ``orthogonal_``: ``torch.nn.init.orthogonal_(v)`` on every WN layer's direction ``v``, nothing else:
  the floor any one-layer-at-a-time orthogonal init pays (one Gaussian draw and one QR per layer).

Checked before timing: ``initialize`` gives the same parameters at every thread count measured (bit for
bit; torch's orthogonal_ does not, MKL's threaded QR rounds differently).

Tried and dropped: one Gaussian draw for all layers and one batched QR call per shape (bit-identical
too) was 1.4x slower than ``orthogonal_`` on WRN-1000-1: stacking the matrices costs more than the calls
it saves, and torch's batched QR factors the matrices one after the other anyway. A per-layer loop cut
to the draw, ``g`` and ``b`` (the former ``lean`` variant) measured 0.97-1.01x at best: at one thread
the draws and QRs are all the time, and only running QRs side by side goes below ``orthogonal_``.

Targets (printed as checks): ``initialize`` on the 10,000-layer WRN no slower than ``orthogonal_``; discovery
adds at most 20% to ``initialize`` on WRN-40-10 (``DISCOVERY_OVERHEAD``: tracing must not be a reason to
declare roles by hand); ``initialize, traced`` on the 10,000-layer WRN under ``TEN_K_SECONDS`` (10 s).
Run: ``python -m wninit.suite.bench.init [--quick] [--out DIR]``.
"""
from __future__ import annotations

import time

import torch

from wninit.suite.bench.common import (Table, machine, main, num_threads, report, summary, thread_counts,
                                       time_interleaved)

import wninit
from wninit.models import WideResNet
from wninit.weightnorm.access import weight_normed_layers, wn_v

MODELS = {"WRN-40-10": (40, 10), "WRN-10000-1": (10000, 1)}
# traced / declared on WRN-40-10 at most: tracing a model must not be a reason to declare its roles by hand
DISCOVERY_OVERHEAD = 1.20
# the 10,000-layer WRN (the paper's deepest ResNet) initialized, traced, in seconds: well below one epoch
TEN_K_SECONDS = 10.0


def _parameters(model: torch.nn.Module, threads: int) -> list[torch.Tensor]:
    with num_threads(threads):
        wninit.initialize(model, "proposed", generator=torch.Generator().manual_seed(0))
    return [p.detach().clone() for _, m in weight_normed_layers(model) for p in m.parameters()]


def _time_model(name: str, threads: list[int], rounds: int) -> list[dict]:
    depth, k = MODELS[name]
    t0 = time.perf_counter()
    model = WideResNet(depth, k, 10)
    build_s = time.perf_counter() - t0
    layers = [m for _, m in weight_normed_layers(model)]
    reference = _parameters(model, 1)
    identical = all(all(torch.equal(a, b) for a, b in zip(reference, _parameters(model, t))) for t in threads)

    def orthogonal():
        for layer in layers:
            torch.nn.init.orthogonal_(wn_v(layer))

    variants = {"initialize": lambda: wninit.initialize(model, "proposed"),
                "initialize, traced": lambda: wninit.initialize(model, "proposed", discover=True),
                "orthogonal_": orthogonal}
    rows = []
    for t in threads:
        with num_threads(t):
            stats = {v: summary(s) for v, s in time_interleaved(variants, rounds, warmup=0).items()}
        base = stats["orthogonal_"]["median"]
        rows.append({"model": name, "layers": len(layers), "params": sum(p.numel() for p in model.parameters()),
                     "build_s": build_s, "threads": t, "stats": stats, "initialize_same_on_every_thread_count": identical,
                     "ratio_initialize": stats["initialize"]["median"] / base,
                     "ratio_traced": stats["initialize, traced"]["median"] / stats["initialize"]["median"],
                     "overhead_us_per_layer": (stats["initialize"]["median"] - base) / len(layers) * 1e6})
    return rows


def run(quick: bool = False, threads: int | None = None) -> dict:
    threads = thread_counts(quick, threads)
    before = machine()
    rows = [r for name in MODELS for r in _time_model(name, threads, 3 if quick else 5)]
    ten_k = [r for r in rows if r["model"] == "WRN-10000-1"]
    forty = [r for r in rows if r["model"] == "WRN-40-10"]
    return {"benchmark": "init", "quick": quick, "threads": threads, "machine": before, "load_average_after": machine()["load_average"],
            "rows": rows, "check_initialize_no_slower_than_orthogonal_10k": all(r["ratio_initialize"] <= 1.0 for r in ten_k),
            "check_discovery_overhead_40_10": all(r["ratio_traced"] <= DISCOVERY_OVERHEAD for r in forty),
            "check_traced_10k_under_10s": all(r["stats"]["initialize, traced"]["median"] < TEN_K_SECONDS for r in ten_k)}


def tables(result: dict) -> list[Table]:
    """One table: each model and thread count, the three variants' medians and their ratios, the checks as notes."""
    cols = ["model", "WN layers", "threads", "initialize", "traced", "orthogonal_", "traced/initialize",
            "initialize/orth", "overhead/layer", "spread"]
    rows = [[r["model"], r["layers"], r["threads"]] + [f"{r['stats'][v]['median']:.3f} s" for v in
            ("initialize", "initialize, traced", "orthogonal_")] + [f"{r['ratio_traced']:.3f}", f"{r['ratio_initialize']:.3f}",
            f"{r['overhead_us_per_layer']:.0f} us", f"{100 * max(s['spread'] for s in r['stats'].values()):.0f}%"]
            for r in result["rows"]]
    notes = [f"discovery adds at most {DISCOVERY_OVERHEAD - 1:.0%} on WRN-40-10: {result['check_discovery_overhead_40_10']}; "
             f"traced initialize on the 10,000-layer WRN under {TEN_K_SECONDS:.0f} s: {result['check_traced_10k_under_10s']}",
             f"initialize no slower than orthogonal_ on the 10,000-layer WRN: "
             f"{result['check_initialize_no_slower_than_orthogonal_10k']}; initialize gives the same parameters at "
             f"every thread count: {all(r['initialize_same_on_every_thread_count'] for r in result['rows'])}"]
    return [Table("Initialization time (median of rounds)", cols, rows, notes)]


def table(result: dict) -> str:
    return report(tables(result), result)


if __name__ == "__main__":
    raise SystemExit(main(run, table, "bench_init", __doc__.splitlines()[0], threads_flag=True))
