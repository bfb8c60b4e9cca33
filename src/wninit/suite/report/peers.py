"""The peers experiment (`peers_depth`): accuracy vs depth and the share of runs that train, per method.

A method is the proposed/data-dependent WN init, He + BN, or a normalizer-free peer (`RunConfig.peer`,
docs/peers.md). Per (architecture, method, depth): the learning rate (and any other grid field) with the best
mean validation accuracy is chosen, and its test accuracy is given as mean ± sample std over seeds, a diverged
run counting 0 (as every depth figure of the report); "trains" counts the runs of every configuration of the
cell whose test accuracy reaches `TRAINS_ACC`.
"""
from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from wninit.suite.train.config import EXECUTION_FIELDS
from wninit.suite.report.plots import save, styled, subplots
from wninit.suite.report.tables import Stat, config_dict, counts_text, status_counts
from wninit.suite.train.result import FINISHED

__all__ = ["TRAINS_ACC", "method_label", "PeerCell", "peer_cells", "peers_markdown", "plot_peers", "deepest_verdicts"]

TRAINS_ACC = 0.5  # 10-class data: five times chance; a run below it has not learned the task
_METHOD_FIELDS = ("scheme", "direction", "norm", "peer", "depth", "seed")


def method_label(cfg: dict) -> str:
    """`proposed (WN)`, `datadep (WN)`, `he + BN`, or the peer's name (on the plain network)."""
    peer = cfg.get("peer", "none")
    if peer != "none":
        return peer
    return f"{cfg['scheme']} + BN" if cfg["norm"] == "bn" else f"{cfg['scheme']} ({cfg['norm'].upper()})"


@dataclass
class PeerCell:
    """One (architecture, method, depth) point: the chosen configuration's test accuracy and the share that trains."""
    test: Stat
    chosen: dict
    trained: int
    finished: int
    grid: Counter  # status counts of every run of the cell, all configurations

    @property
    def trains_pct(self) -> float | None:
        return 100.0 * self.trained / self.finished if self.finished else None


def _test_acc(run) -> float | None:
    if run.status == "diverged":
        return 0.0
    if run.status != "completed":
        return None
    v = (run.metrics or {}).get("test_acc")
    return None if v is None or not math.isfinite(v) else float(v)


def _val(runs) -> float:
    values = [0.0 if r.status == "diverged" else (r.metrics or {}).get("best_val_acc") for r in runs
              if r.status in FINISHED]
    values = [v for v in values if v is not None and math.isfinite(v)]
    return sum(values) / len(values) if values else -math.inf


def _config_key(run) -> str:
    cfg = {k: v for k, v in config_dict(run).items() if k not in EXECUTION_FIELDS + _METHOD_FIELDS}
    return json.dumps(cfg, sort_keys=True, default=str)


def peer_cells(runs) -> dict[tuple[str, str, int], PeerCell]:
    """`{(arch, method, depth): PeerCell}` in the order the runs list them."""
    groups = defaultdict(list)
    for r in runs:
        cfg = config_dict(r)
        groups[(cfg["arch"], method_label(cfg), cfg["depth"])].append(r)
    cells = {}
    for key, group in groups.items():
        configs = defaultdict(list)
        for r in group:
            configs[_config_key(r)].append(r)
        best = max(sorted(configs), key=lambda k: _val(configs[k]))
        chosen = configs[best]
        lr = {config_dict(r)["lr"] for r in chosen}
        values = [v for v in map(_test_acc, chosen) if v is not None]
        accs = [v for v in map(_test_acc, group) if v is not None]
        cells[key] = PeerCell(Stat(values, status_counts(chosen)), {"lr": sorted(lr)[0]},
                              sum(v >= TRAINS_ACC for v in accs), len(accs), status_counts(group))
    return cells


def deepest_verdicts(cells) -> dict[str, tuple[int, list[str], list[str]]]:
    """Per architecture: `(deepest depth, methods that train there, methods that fail there)`; a method
    trains when most of its runs there reach `TRAINS_ACC`."""
    out = {}
    for arch in dict.fromkeys(a for a, _, _ in cells):
        depth = max(d for a, _, d in cells if a == arch)
        at = {m: c for (a, m, d), c in cells.items() if a == arch and d == depth and c.finished}
        ok = [m for m, c in at.items() if c.trained * 2 > c.finished]
        out[arch] = (depth, ok, [m for m in at if m not in ok])
    return out


def peers_markdown(cells) -> str:
    """The peers table (one row per architecture, method, depth) and the verdict at each deepest depth."""
    from wninit.suite.report.sections import md_table

    rows = [[arch, method, depth, c.test.text(), f"{c.chosen['lr']:g}",
             "-" if c.trains_pct is None else f"{c.trains_pct:.0f}% ({c.trained}/{c.finished})",
             counts_text(c.grid)]
            for (arch, method, depth), c in cells.items()]
    table = md_table(["arch", "method", "depth", "test acc (best lr by val)", "lr", "runs that train", "grid runs"],
                     rows)
    lines = [table, "", f"A run trains when its test accuracy reaches {TRAINS_ACC:g}; a diverged run counts 0."]
    for arch, (depth, ok, bad) in deepest_verdicts(cells).items():
        lines.append(f"- {arch.upper()} at depth {depth}: trains: {', '.join(ok) or 'none'}; "
                     f"fails: {', '.join(bad) or 'none'}.")
    return "\n".join(lines)


@styled
def plot_peers(cells, path, *, title: str, scale: str) -> Path:
    """Per architecture: test accuracy vs depth (± std over seeds) above the % of runs that train."""
    from matplotlib import colormaps

    archs = list(dict.fromkeys(a for a, _, _ in cells))
    fig, axes = subplots(2, len(archs), figsize=(4.8 * len(archs), 7.0), squeeze=False, sharex="col")
    methods = list(dict.fromkeys(m for _, m, _ in cells))
    # tab20's dark shades first, then its light ones: 20 distinct colours (11 methods in peers_depth)
    colours = {m: colormaps["tab20"]((2 * i) % 20 + (2 * i // 20) % 2) for i, m in enumerate(methods)}
    # a marker per method too: where curves coincide (several methods at 100% or at chance) all stay visible
    markers = {m: "osD^v<>ph*X"[i % 11] for i, m in enumerate(methods)}
    for j, arch in enumerate(archs):
        depths = sorted({d for a, _, d in cells if a == arch})
        for m in methods:
            pts = [(d, cells[(arch, m, d)]) for d in depths if (arch, m, d) in cells]
            acc = [(d, c) for d, c in pts if c.test.mean is not None]
            if acc:
                axes[0][j].errorbar([d for d, _ in acc], [c.test.mean for _, c in acc],
                                    yerr=[c.test.std or 0.0 for _, c in acc], capsize=3, marker=markers[m],
                                    color=colours[m], label=m, alpha=0.85, markerfacecolor="none")
            pct = [(d, c.trains_pct) for d, c in pts if c.trains_pct is not None]
            if pct:
                axes[1][j].plot([d for d, _ in pct], [p for _, p in pct], marker=markers[m], color=colours[m], label=m,
                                alpha=0.85, markerfacecolor="none")
        axes[0][j].set_title(arch.upper())
        axes[0][j].set_ylim(-0.03, 1.03)
        axes[1][j].set_ylim(-3, 103)
        axes[1][j].set_xscale("log")
        axes[1][j].set_xticks(depths)
        axes[1][j].set_xticklabels([str(d) for d in depths])
        axes[1][j].minorticks_off()
        axes[1][j].set_xlabel("depth")
    axes[0][0].set_ylabel("test accuracy")
    axes[1][0].set_ylabel(f"% of runs that train (acc >= {TRAINS_ACC:g})")
    fig.suptitle(f"{title} ({scale})")
    fig.tight_layout()
    handles = {}
    for ax in axes[0]:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    fig.legend(list(handles.values()), list(handles), loc="upper center", bbox_to_anchor=(0.5, 0.0),
               ncol=min(5, len(handles)), frameon=False)
    return save(fig, path)
