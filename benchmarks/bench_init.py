"""Initialization time: ``wninit.initialize(model, "proposed")`` vs ``torch.nn.init.orthogonal_`` on the same layers.

Models: WRN-40-10 (the paper's CIFAR net, 36M parameters) and a 10,000-layer WN WRN (depth 10000 = 6N+4,
k = 1: 9,999 WN convs). Variants, interleaved (benchmarks/common.py):

- ``initialize``: the library call, orthogonal directions (spec §3.5);
- ``orthogonal_``: ``torch.nn.init.orthogonal_(v)`` on every WN layer's direction ``v``, nothing else:
  the floor any orthogonal init pays (one Gaussian draw and one QR per layer);
- ``lean``: a sketch of what ``schemes.initialize`` could do per layer (see :func:`lean_proposed`): the
  same draws from the same generator written straight into ``v``, then ``g`` and ``b`` filled; checked to
  give bit-identical parameters to ``initialize`` before it is timed.

Tried and dropped: one Gaussian draw for all layers and one batched QR call per shape (bit-identical
too: CPU ``normal_`` fills 16 values at a time and LAPACK factors each matrix of a batch alone) was
1.4x slower than ``orthogonal_`` on WRN-1000-1: stacking the matrices costs more than the calls it saves.

Issue 7's target: ``initialize`` on the 10,000-layer WRN no slower than ``orthogonal_`` (ratio printed).
Run: ``python benchmarks/bench_init.py [--quick] [--out DIR]``.
"""
from __future__ import annotations

import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import busy_note, format_table, machine, main, num_threads, summary, time_interleaved  # noqa: E402

import wninit  # noqa: E402
from wninit.init import fan_in_and_fan_out, proposed_gain  # noqa: E402
from wninit.models import WideResNet  # noqa: E402
from wninit.roles import get_role  # noqa: E402
from wninit.schemes import role_gamma  # noqa: E402
from wninit.weightnorm import direction, gain, weight_normed_layers  # noqa: E402

MODELS = {"WRN-40-10": (40, 10), "WRN-10000-1": (10000, 1)}


def _orthogonal_into(v: torch.Tensor, generator: torch.Generator | None) -> None:
    """torch.nn.init.orthogonal_(v, gain=1) step for step, without its final multiply by the gain."""
    rows = v.size(0)
    flat = v.new_empty((rows, v.numel() // rows)).normal_(0, 1, generator=generator)
    if rows < flat.size(1):
        flat.t_()
    q, r = torch.linalg.qr(flat)
    q *= torch.diag(r, 0).sign()
    if rows < v.numel() // rows:
        q.t_()
    v.view_as(q).copy_(q)


@torch.no_grad()
def lean_proposed(model: torch.nn.Module, generator: torch.Generator | None = None) -> None:
    """``initialize(model, "proposed")``'s result for a wninit-layer model, with per-layer work cut to the draw.

    What differs from schemes.initialize_layer_: the direction is drawn into ``v`` itself (no temporary
    and copy), ``g`` is one ``fill_`` of the role's gain (no tensor built from it, no mean read back),
    and the layer's API is looked up once.
    """
    for _, layer in weight_normed_layers(model):
        v = direction(layer)
        _orthogonal_into(v, generator)
        fan_in, fan_out = fan_in_and_fan_out(v)
        gain(layer).fill_(proposed_gain(fan_in, fan_out, role_gamma(get_role(layer))))
        if layer.bias is not None:
            layer.bias.zero_()


def _same_parameters(model: torch.nn.Module, init) -> bool:
    """``init(model, generator)`` gives exactly the parameters ``initialize`` gives, for the same seed."""
    wninit.initialize(model, "proposed", generator=torch.Generator().manual_seed(0))
    params = [p for _, m in weight_normed_layers(model) for p in m.parameters()]
    want = [p.detach().clone() for p in params]
    with torch.no_grad():
        for p in params:
            p.fill_(float("nan"))
    init(model, torch.Generator().manual_seed(0))
    return all(torch.equal(a, b) for a, b in zip(params, want))


def _time_model(name: str, threads: list[int], rounds: int) -> list[dict]:
    depth, k = MODELS[name]
    t0 = time.perf_counter()
    model = WideResNet(depth, k, 10)
    build_s = time.perf_counter() - t0
    layers = [m for _, m in weight_normed_layers(model)]
    identical = _same_parameters(model, lean_proposed)

    def orthogonal():
        for layer in layers:
            torch.nn.init.orthogonal_(direction(layer))

    variants = {"initialize": lambda: wninit.initialize(model, "proposed"), "orthogonal_": orthogonal,
                "lean": lambda: lean_proposed(model)}
    rows = []
    for t in threads:
        with num_threads(t):
            stats = {v: summary(s) for v, s in time_interleaved(variants, rounds, warmup=0).items()}
        base = stats["orthogonal_"]["median"]
        rows.append({"model": name, "layers": len(layers), "params": sum(p.numel() for p in model.parameters()),
                     "build_s": build_s, "threads": t, "stats": stats, "lean_identical_to_initialize": identical,
                     "ratio_initialize": stats["initialize"]["median"] / base, "ratio_lean": stats["lean"]["median"] / base,
                     "overhead_us_per_layer": (stats["initialize"]["median"] - base) / len(layers) * 1e6})
    return rows


def run(quick: bool = False) -> dict:
    cores = os.cpu_count() or 1
    threads = [cores] if quick else sorted({cores, 1}, reverse=True)
    before = machine()
    rows = [r for name in MODELS for r in _time_model(name, threads, 3 if quick else 5)]
    ten_k = [r for r in rows if r["model"] == "WRN-10000-1"]
    return {"benchmark": "init", "quick": quick, "machine": before, "load_average_after": machine()["load_average"],
            "rows": rows, "check_initialize_no_slower_than_orthogonal_10k": all(r["ratio_initialize"] <= 1.0 for r in ten_k)}


def table(result: dict) -> str:
    m = result["machine"]
    cols = ["model", "WN layers", "threads", "initialize", "orthogonal_", "lean", "initialize/orth", "lean/orth",
            "overhead/layer", "spread"]
    rows = [[r["model"], r["layers"], r["threads"]] + [f"{r['stats'][v]['median']:.3f} s" for v in
            ("initialize", "orthogonal_", "lean")] + [f"{r['ratio_initialize']:.3f}", f"{r['ratio_lean']:.3f}",
            f"{r['overhead_us_per_layer']:.0f} us", f"{100 * max(s['spread'] for s in r['stats'].values()):.0f}%"]
            for r in result["rows"]]
    notes = [f"initialize no slower than orthogonal_ on the 10,000-layer WRN: "
             f"{result['check_initialize_no_slower_than_orthogonal_10k']}; lean gives parameters identical to "
             f"initialize: {all(r['lean_identical_to_initialize'] for r in result['rows'])}"]
    return (f"machine: {m['cpu']}, {m['cpu_count']} CPUs, torch {m['torch']}, load average {m['load_average']} -> "
            f"{result['load_average_after']}\n" + format_table("Initialization time (median of rounds)", cols, rows,
                                                                notes + [n for n in [busy_note(m["load_average"], result["load_average_after"])] if n]))


if __name__ == "__main__":
    raise SystemExit(main(run, table, "bench_init", __doc__.splitlines()[0]))
