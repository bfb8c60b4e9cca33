"""Figures of the diagnostics: the paper's Figure 1 layout (docs/method.md §7.1) and a propagation table's curves.

matplotlib is imported inside the functions (`import wninit` needs only torch and numpy), and each figure is a
`matplotlib.figure.Figure` saved by its own `savefig`: pyplot is never imported, so the caller's backend (a
notebook's inline one, say) and pyplot's list of open figures stay as they were.
"""
from __future__ import annotations

from pathlib import Path

from wninit.errors import UserError
from wninit.diagnostics.norm_propagation import PropagationTable
from wninit.diagnostics.synthetic import INITS, Figure1Row
from wninit.init.schemes import REGISTRY

__all__ = ["plot_figure1", "plot_propagation", "plot_signal_propagation", "plot_explain", "EXPLAIN_CATEGORIES"]

# plot_explain's colours: how each layer's gamma was set (the explain table's src and rule columns)
EXPLAIN_CATEGORIES = {"declared": "#1b5e20", "discovered": "#1f77b4", "outside the theory": "#d62728",
                      "default": "#9e9e9e"}

# docs/method.md §7.1: feed-forward forward y-limits [-0.1, 2]; ResNet panels [0.9, 4]. The feed-forward backward
# panel's limits are NOT FOUND in the spec: it shares the forward panel's [-0.1, 2], where its curves lie.
_PANELS = {
    "ff_forward": ("Layer Index (i)", r"$||h^i|| / ||x||$", (-0.1, 2.0)),
    "ff_backward": ("Layer Index (i)", r"$||\partial h^i|| / ||\partial h^L||$", (-0.1, 2.0)),
    "resnet_forward": ("Block Index (b)", r"$||h^b|| / ||x||$", (0.9, 4.0)),
    "resnet_backward": ("Block Index (b)", r"$||\partial h^b|| / ||\partial h^B||$", (0.9, 4.0)),
}

# Figure 1's curves (docs/method.md §7.1): the proposed init in the proposed scheme's colours, and the unit-gain
# baseline "He (g=1)" (a WN net with g = 1, a scheme of its own) in a colour no scheme uses.
FIGURE1_COLOURS = {"Proposed (orthogonal)": REGISTRY["proposed"].colours[0],
                   "Proposed (He)": REGISTRY["proposed"].colours[1], "He (g=1)": "#c2185b"}


def _subplots(nrows: int, ncols: int, figsize: tuple[float, float]):
    """A figure and its axes, as `pyplot.subplots` makes them, outside pyplot (no backend is selected)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    return fig, fig.subplots(nrows, ncols)


def plot_figure1(rows: list[Figure1Row], path: str | Path) -> Path:
    """The paper's Figure 1: 2x2 panels (feed-forward top, ResNet bottom; forward left, backward right),
    12x6 inches, mean ± std error bars, one shared legend of init x width in 3 columns. Rows of several network
    draws plot the first (the paper's figure is one draw)."""
    rows = [Figure1Row(*r) for r in rows]
    rows = [r for r in rows if r.draw == min(x.draw for x in rows)]
    if not rows:
        raise UserError("no Figure 1 rows to plot: compute them with wninit.diagnostics.synthetic.figure1()")
    fig, axes = _subplots(2, 2, figsize=(12, 6))
    widths = sorted({r.width for r in rows})
    styles = ["--", "-", ":", "-."]
    handles = {}
    for ax, (panel, (xlabel, ylabel, ylim)) in zip(axes.flat, _PANELS.items()):
        for init in INITS:
            for w_i, width in enumerate(widths):
                pts = sorted((r.index, r.mean, r.std) for r in rows if r.panel == panel and r.init == init and r.width == width)
                if not pts:
                    continue
                idx, mean, std = zip(*pts)
                line = ax.errorbar(idx, mean, yerr=std, color=FIGURE1_COLOURS[init], linestyle=styles[w_i % len(styles)],
                                   marker=".", markersize=3, capsize=2, linewidth=1)
                handles.setdefault(f"{init}, width {width}", line)
        ax.set(xlabel=xlabel, ylabel=ylabel, ylim=ylim)
        ax.grid(alpha=0.3)
    fig.legend(list(handles.values()), list(handles.keys()), loc="upper center", ncol=3, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.9))
    path = Path(path)
    fig.savefig(path, dpi=120)
    return path


def plot_propagation(table: PropagationTable, path: str | Path, title: str | None = None) -> Path:
    """Forward ratios (plain, RMS and per position) and the backward ratio against the point index, log y."""
    if not isinstance(table, PropagationTable) or not table.rows:
        raise UserError("plot_propagation needs a non-empty PropagationTable from wninit.diagnostics.propagation")
    fig, (ax_f, ax_b) = _subplots(1, 2, figsize=(12, 4))
    idx = table.column("index")
    ax_f.errorbar(idx, table.column("forward_mean"), yerr=table.column("forward_std"), label=r"$||h_i||/||x||$",
                  marker=".", capsize=2)
    ax_f.plot(idx, table.column("forward_rms_mean"), label="per element (RMS)", linestyle="--")
    ax_f.plot(idx, table.column("forward_position_mean"), label="per position", linestyle=":")
    ax_b.errorbar(idx, table.column("backward_mean"), yerr=table.column("backward_std"), marker=".", capsize=2,
                  color="tab:orange", label=r"$||\partial L/\partial h_i|| / ||\partial L/\partial h_L||$")
    for ax, label in ((ax_f, "forward"), (ax_b, "backward")):
        _log_panel(ax, "measuring point i", f"{label} norm ratio")
    return _save(fig, path, title)


def _log_panel(ax, xlabel: str, ylabel: str) -> None:
    ax.set(xlabel=xlabel, ylabel=ylabel, yscale="log")
    ax.axhline(1.0, color="gray", linewidth=0.8)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)


def _save(fig, path: str | Path, title: str | None) -> Path:
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    return path


def plot_signal_propagation(tables: dict[str, PropagationTable], path: str | Path, title: str | None = None) -> Path:
    """Signal-propagation plot in the NF-ResNet style: per scheme, the forward and backward norm per position at
    every measuring point (stage inputs, block outputs, layer outputs), relative to the input and to the last
    point, log y."""
    if not tables or not all(isinstance(t, PropagationTable) and t.rows for t in tables.values()):
        raise UserError("plot_signal_propagation needs {scheme: non-empty PropagationTable}")
    fig, (ax_f, ax_b) = _subplots(1, 2, figsize=(12, 4))
    for scheme, table in tables.items():
        idx = table.column("index")
        ax_f.plot(idx, table.column("forward_position_mean"), marker=".", label=scheme)
        ax_b.plot(idx, table.column("backward_position_mean"), marker=".", label=scheme)
    names = next(iter(tables.values())).column("name")
    step = max(1, len(names) // 12)
    for ax, ylabel in ((ax_f, r"forward $||h_i||/||x||$ per position"),
                       (ax_b, r"backward $||\partial h_i||/||\partial h_L||$ per position")):
        _log_panel(ax, "measuring point", ylabel)
        ax.set_xticks(range(1, len(names) + 1, step), names[::step], rotation=45, ha="right", fontsize=7)
    return _save(fig, path, title)


def _category(record) -> str:
    if "outside the theory" in (record.rule or ""):
        return "outside the theory"
    return record.source if record.source in EXPLAIN_CATEGORIES else "default"


def plot_explain(table, path: str | Path, title: str | None = None) -> Path:
    """The explain table as a figure of the model's stages: one bar per layer (its gain g, in the table's
    order), coloured by how its gamma was set (declared, discovered, outside the theory, or the default
    where the layer could not be placed), each residual stage shaded and labelled with its B_k."""
    rows = [r for r in table if r.g is not None]
    if not rows:
        raise UserError("plot_explain needs an explain table with at least one gain: explain a weight-normalized model")
    fig, ax = _subplots(1, 1, figsize=(max(6.0, 0.18 * len(rows) + 2), 4))
    colours = [EXPLAIN_CATEGORIES[_category(r)] for r in rows]
    ax.bar(range(len(rows)), [r.g for r in rows], color=colours)
    start, shaded = 0, 0
    for i in range(1, len(rows) + 1):  # shade each run of layers of one stage, alternating, so stages part
        if i == len(rows) or rows[i].stage != rows[start].stage:
            if rows[start].stage is not None:
                ax.axvspan(start - 0.5, i - 0.5, color=("#fff3e0", "#e3f2fd")[shaded % 2], zorder=0)
                shaded += 1
                ax.text((start + i - 1) / 2, ax.get_ylim()[1] * 0.97, f"stage {rows[start].stage}\nB_k={rows[start].stage_blocks}",
                        ha="center", va="top", fontsize=7)
            start = i
    ax.set_xticks(range(len(rows)), [r.name for r in rows], rotation=90, fontsize=6)
    ax.set(ylabel="gain g", xlim=(-0.5, len(rows) - 0.5))
    from matplotlib.patches import Patch

    used = dict.fromkeys(_category(r) for r in rows)
    ax.legend(handles=[Patch(color=EXPLAIN_CATEGORIES[c], label=c) for c in used], fontsize=8, loc="upper left",
              bbox_to_anchor=(1.0, 1.0))
    return _save(fig, path, title)
