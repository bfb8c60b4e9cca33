"""The paper's figures from the aggregates of `wninit.suite.report.tables` (docs/method.md §7.2-§7.4), each with the
paper's own values in a panel beside ours.

One colour per scheme in every figure (a hue per scheme, light for the Gaussian "(He)" direction, dark
for orthogonal), test accuracy solid and train accuracy dashed, error bars = std over seeds, 150 dpi
and fonts >= 9 pt so a figure reads at 100% zoom. matplotlib is imported inside the functions (`import wninit`
needs only torch and numpy); each figure is a `matplotlib.figure.Figure` saved by its own `savefig`, drawn
under the figures' rcParams in a `matplotlib.rc_context`: pyplot is never imported, and the caller's backend
and rcParams stay as they were.
"""
from __future__ import annotations

import functools
from pathlib import Path

from wninit.init.schemes import REGISTRY
from wninit.suite.report.reference import scheme_label
from wninit.suite.report.tables import GOOD_ACC, good_configs, trains_threshold

__all__ = ["scheme_style", "plot_depth", "plot_hparams", "plot_survival", "DPI"]

DPI = 150
_FONT = 10
_RC = {"font.size": _FONT, "axes.titlesize": _FONT + 1, "legend.fontsize": _FONT - 1, "axes.grid": True, "grid.alpha": 0.3}


def scheme_style(series: tuple[str, str]) -> dict:
    """matplotlib keywords of one (scheme, direction): the same colour and marker in every figure."""
    scheme, direction = series
    dark, light = REGISTRY[scheme].colours if scheme in REGISTRY else ("#000000", "#777777")
    # Gaussian curves are drawn thinner and on top, so where two directions coincide (both diverged at
    # 0, say) both stay visible.
    gaussian = direction == "gaussian"
    return {"color": light if gaussian else dark, "marker": "s" if gaussian else "o",
            "zorder": 3 if gaussian else 2, "label": scheme_label(scheme, direction)}


def _wrap(text: str, width: int = 70) -> str:
    import textwrap
    return "\n".join(textwrap.wrap(text, width))


def _lw(series) -> float:
    return 1.4 if series[1] == "gaussian" else 2.2


def styled(plot):
    """Runs `plot` under the figures' rcParams (`_RC`), restored when it returns: the style is read both
    when the artists are made and when ticks and text are laid out in `savefig`, so the whole call is inside."""
    @functools.wraps(plot)
    def scoped(*args, **kwargs):
        import matplotlib
        with matplotlib.rc_context(_RC):
            return plot(*args, **kwargs)
    return scoped


def subplots(nrows: int, ncols: int, **kwargs):
    """`pyplot.subplots` without pyplot: a `Figure` (`figsize` and the other figure keywords) and its axes."""
    from matplotlib.figure import Figure
    fig = Figure(figsize=kwargs.pop("figsize"))
    return fig, fig.subplots(nrows, ncols, **kwargs)


def save(fig, path: Path) -> Path:
    path = Path(path)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    return path


def _log_depth_axis(ax, depths, xlabel):
    ax.set_xscale("log")
    ax.set_xticks(sorted(depths))
    ax.set_xticklabels([str(d) for d in sorted(depths)])
    ax.minorticks_off()
    ax.set_xlabel(xlabel)


def _finish_acc_axis(ax, ylabel="accuracy (fraction correct)"):
    ax.set_ylim(-0.03, 1.03)
    ax.set_ylabel(ylabel)


@styled
def plot_depth(cells: dict, path, *, title: str, scale: str, reference=None, train: bool = True,
               xlabel: str = "depth (number of WN layers)", ylabel: str = "accuracy (fraction correct)") -> Path:
    """Accuracy vs depth (Fig. 2 depth panels, Fig. 3-left): test solid, train dashed, ± std over seeds;
    a diverged run is plotted at its best checkpoint's accuracy, at 0 without one (docs/method.md §7.2). `reference`: `{"test": {depth: {series: acc}}, ...}`."""
    panels = 2 if reference is not None else 1
    fig, axes = subplots(1, panels, figsize=(6.2 * panels, 4.6), squeeze=False)
    ax = axes[0][0]
    series = list(dict.fromkeys(s for s, _ in cells))
    depths = sorted({d for _, d in cells})
    for s in series:
        style = scheme_style(s)
        pts = [(d, cells[(s, d)]) for d in depths if (s, d) in cells and cells[(s, d)].test.mean is not None]
        if not pts:
            continue
        ax.errorbar([d for d, _ in pts], [c.test.mean for _, c in pts], yerr=[c.test.std or 0.0 for _, c in pts],
                    capsize=3, linestyle="-", linewidth=_lw(s), markersize=5, **style)
        if train:
            tr = [(d, c) for d, c in pts if c.train.mean is not None]
            # train curves without error bars: six schemes x two bars per depth would hide the test curves;
            # the train std is in the report's table
            ax.plot([d for d, _ in tr], [c.train.mean for _, c in tr], linestyle="--", linewidth=1.2, markersize=3,
                    alpha=0.8, **{**style, "label": None})
    _log_depth_axis(ax, depths, xlabel)
    _finish_acc_axis(ax, ylabel)
    ax.set_title(_wrap(f"this run ({scale})"), fontsize=_FONT)
    if reference is not None:
        _plot_reference_depth(axes[0][1], reference, xlabel, ylabel, train)
    fig.suptitle(title)
    fig.tight_layout()
    _figure_legend(fig, axes[0], train)
    return save(fig, path)


def _figure_legend(fig, axes, train: bool | None = None):
    """One legend under the panels for the whole figure: every scheme once, plus the line styles."""
    from matplotlib.lines import Line2D
    seen = {}
    for ax in axes:
        for h, label in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(label, h)
    handles, labels = list(seen.values()), list(seen)
    if train is not None:
        handles.append(Line2D([], [], color="black", linestyle="-"))
        labels.append("test (solid)")
        if train:
            handles.append(Line2D([], [], color="black", linestyle="--"))
            labels.append("train (dashed)")
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=min(4, len(labels)),
               frameon=False)


def _plot_reference_depth(ax, reference, xlabel, ylabel, train):
    data = reference.data if hasattr(reference, "data") else reference
    test = data.get("test", data)  # Fig. 3-left data is {layers: {series: acc}}
    depths = sorted(test)
    series = list(dict.fromkeys(s for d in depths for s in test[d]))
    for s in series:
        style = scheme_style(s)
        xs = [d for d in depths if s in test[d]]
        ax.plot(xs, [test[d][s] for d in xs], linestyle="-", linewidth=_lw(s), markersize=5, **style)
        tr = data.get("train", {}) if train else {}
        xs = [d for d in sorted(tr) if s in tr[d]]
        if xs:
            ax.plot(xs, [tr[d][s] for d in xs], linestyle="--", linewidth=1.2, markersize=3, alpha=0.8,
                    **{**style, "label": None})
    _log_depth_axis(ax, depths, xlabel)
    _finish_acc_axis(ax, ylabel)
    ax.set_title(f"paper ({reference.source}; ±0.02)" if hasattr(reference, "source") else "paper", fontsize=_FONT)


@styled
def plot_hparams(curves: dict, path, *, title: str, scale: str, reference=None) -> Path:
    """Fig. 2 hyper-parameter panel: each configuration's test accuracy (mean over seeds, ± std), sorted
    in decreasing order per scheme; the dotted line is the "trains" threshold of docs/method.md §9 claim 7
    (`wninit.suite.report.tables.trains_threshold`)."""
    from matplotlib.ticker import MaxNLocator
    panels = 2 if reference is not None else 1
    fig, axes = subplots(1, panels, figsize=(6.2 * panels, 4.6), squeeze=False)
    fig.set_layout_engine("constrained")  # lays the legends under the axes out with them
    ax = axes[0][0]
    n_max, threshold = 1, trains_threshold(curves)
    for s, results in curves.items():
        style = scheme_style(s)
        pts = [(i + 1, c) for i, c in enumerate(results) if c.test.mean is not None]
        if not pts:
            continue
        n_max = max(n_max, len(results))
        ax.errorbar([i for i, _ in pts], [c.test.mean for _, c in pts], yerr=[c.test.std or 0.0 for _, c in pts],
                    capsize=2, linewidth=1.6, markersize=4,
                    **{**style, "label": f"{style['label']}: {good_configs(results, threshold)}/{len(results)} train"})
    ax.axhline(threshold, color="black", linestyle=":", linewidth=1, label=f"trains: test >= {threshold:.3f}")
    ax.set_xlim(0.5, n_max + 0.5)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("hyper-parameter configuration (sorted by test accuracy)")
    _finish_acc_axis(ax, "test accuracy (fraction correct)")
    ax.set_title(_wrap(f"this run ({scale})"), fontsize=_FONT)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
    if reference is not None:
        ax = axes[0][1]
        from wninit.suite.report.reference import SCHEME_ORDER
        for s, segments in sorted(reference.data["curve"].items(), key=lambda kv: SCHEME_ORDER.index(kv[0])):
            xs, ys = [], []
            for first, last, acc in segments:
                xs += [first, last]
                ys += [acc, acc]
            style = scheme_style(s)
            lo, hi = reference.data["good"][s]
            good = str(lo) if lo == hi else f"{lo}-{hi}"
            ax.plot(xs, ys, linewidth=1.6, markersize=0,
                    **{**style, "label": f"{style['label']}: ≈{good}/{reference.data['n_configs']}"})
        ax.axhline(GOOD_ACC, color="black", linestyle=":", linewidth=1)
        ax.set_xlim(0.5, reference.data["n_configs"] + 0.5)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("hyper-parameter configuration (sorted)")
        _finish_acc_axis(ax, "test accuracy (fraction correct)")
        ax.set_title(f"paper ({reference.source}; ±0.02)", fontsize=_FONT)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
    fig.suptitle(title)
    return save(fig, path)


@styled
def plot_survival(cells: dict, path, *, title: str, scale: str, reference=None) -> Path:
    """Fig. 3-right: % of seeds reaching epoch 3 without diverging, bars per scheme, one panel without and
    one with warmup; the paper's bars in a second row (docs/method.md §7.4)."""
    rows = 2 if reference is not None else 1
    fig, axes = subplots(rows, 2, figsize=(12.4, 4.2 * rows), squeeze=False)
    ours = {k: (c.pct, f"{c.survived}/{c.finished}") for k, c in cells.items()}
    _bars(axes[0], ours, "this run")
    if reference is not None:
        paper = {(lr, warm, s): (pct, None) for (lr, warm), by in reference.data.items() for s, pct in by.items()}
        _bars(axes[1], paper, f"paper ({reference.source}, 20 seeds)")
    fig.suptitle(f"{title}\nthis run: {scale}")
    fig.tight_layout()
    _figure_legend(fig, [a for row in axes for a in row])
    return save(fig, path)


def _bars(axes, values: dict, where: str):
    lrs = sorted({lr for lr, _, _ in values})
    from wninit.suite.report.reference import SCHEME_ORDER
    series = sorted(dict.fromkeys(s for _, _, s in values),
                    key=lambda s: SCHEME_ORDER.index(s) if s in SCHEME_ORDER else len(SCHEME_ORDER))
    width = 0.8 / max(1, len(series))
    for ax, warm in zip(axes, (False, True)):
        for j, s in enumerate(series):
            style = scheme_style(s)
            xs, hs = [], []
            for i, lr in enumerate(lrs):
                pct, _ = values.get((lr, warm, s), (None, None))
                if pct is not None:
                    xs.append(i - 0.4 + width * (j + 0.5))
                    hs.append(max(pct, 0.8))  # a 0% bar is drawn as a hair line, as on the poster
            ax.bar(xs, hs, width=width * 0.95, color=style["color"], label=style["label"], edgecolor="black",
                   linewidth=0.4)
        ax.set_xlim(-0.5, len(lrs) - 0.5)
        ax.set_xticks(range(len(lrs)))
        ax.set_xticklabels([f"{lr:g}" for lr in lrs])
        ax.set_xlabel("learning rate")
        ax.set_ylabel("runs reaching epoch 3 without NaN (%)")
        ax.set_ylim(0, 105)
        ax.set_title(f"{where}, {'with' if warm else 'without'} warmup", fontsize=_FONT)
        if not any(w == warm for _, w, _ in values):
            ax.text(0.5, 0.5, f"no runs {'with' if warm else 'without'} warmup", transform=ax.transAxes,
                    ha="center", va="center", color="gray")
