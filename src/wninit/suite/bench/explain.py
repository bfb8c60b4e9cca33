"""``wninit.explain`` vs ``wninit.initialize`` on a VGG-sized model: the table without the init's draws.

Model: VGG-16 (13 convs, classifier ``25088 -> 4096 -> 4096 -> 1000``, 138M parameters), every layer
weight-normalized by ``wninit.weight_norm`` and no role declared, so both calls trace the model to place
its layers (docs/method.md §3.7). Variants, interleaved (bench/common.py):

- ``initialize``: ``wninit.initialize(model, "proposed")``: placement, then every direction drawn and
  factored (``wninit.init.gains.orthogonal_directions_``), g and b written;
- ``explain``: ``wninit.explain(model, print_table=False)``: the same records (role, gamma, g) from the
  placement and the layers' shapes, no direction drawn, the model untouched.

Target (printed as a check): ``explain`` under 10% of ``initialize``.
Run: ``python -m wninit.suite.bench.explain [--quick] [--out DIR]``.
"""
from __future__ import annotations


import torch
from torch import nn

from wninit.suite.bench.common import Table, machine, main, report, summary, time_interleaved

import wninit

VGG16 = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
TARGET = 0.10  # explain / initialize at most


def vgg16(num_classes: int = 1000) -> nn.Sequential:
    """VGG-16 as Simonyan & Zisserman (2015) describe it (configuration D), written here from that description."""
    layers, channels = [], 3
    for width in VGG16:
        if width == "M":
            layers.append(nn.MaxPool2d(2))
        else:
            layers += [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU()]
            channels = width
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(7), nn.Flatten(), nn.Linear(512 * 7 * 7, 4096), nn.ReLU(),
                         nn.Dropout(), nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(), nn.Linear(4096, num_classes))


def run(quick: bool = False) -> dict:
    before = machine()
    torch.manual_seed(0)
    model = wninit.weight_norm(vgg16())
    last = {}  # each variant's records from its last timed call: the records are compared without another init
    variants = {"initialize": lambda: last.update(initialize=wninit.initialize(model, "proposed",
                                                                                generator=torch.Generator().manual_seed(0))),
                "explain": lambda: last.update(explain=wninit.explain(model, print_table=False))}
    stats = {v: summary(s) for v, s in time_interleaved(variants, 2 if quick else 3, warmup=0).items()}
    same = [(r.name, r.gamma, r.g) for r in last["explain"]] == [(r.name, r.gamma, r.g) for r in last["initialize"]]
    ratio = stats["explain"]["median"] / stats["initialize"]["median"]
    return {"benchmark": "explain", "quick": quick, "machine": before, "load_average_after": machine()["load_average"],
            "model": "VGG-16", "layers": len(wninit.weight_normed_layers(model)),
            "params": sum(p.numel() for p in model.parameters()), "threads": torch.get_num_threads(),
            "stats": stats, "ratio": ratio, "same_records": same, "check_explain_under_10pct": ratio < TARGET}


def tables(result: dict) -> list[Table]:
    cols = ["model", "WN layers", "params", "threads", "initialize", "explain", "explain/initialize", "spread"]
    rows = [[result["model"], result["layers"], f"{result['params'] / 1e6:.0f}M", result["threads"],
             f"{result['stats']['initialize']['median']:.2f} s", f"{result['stats']['explain']['median']:.3f} s",
             f"{result['ratio']:.4f}", f"{100 * max(s['spread'] for s in result['stats'].values()):.0f}%"]]
    notes = [f"explain under {TARGET:.0%} of initialize: {result['check_explain_under_10pct']}; the same role, gamma "
             f"and g on every layer: {result['same_records']}"]
    return [Table("explain vs initialize (median of rounds)", cols, rows, notes)]


def table(result: dict) -> str:
    return report(tables(result), result)


if __name__ == "__main__":
    raise SystemExit(main(run, table, "bench_explain", __doc__.splitlines()[0]))
