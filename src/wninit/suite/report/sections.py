"""One markdown section (+ its PNG) per experiment of a store: our table beside the paper's (docs/method.md §7)."""
from __future__ import annotations

from pathlib import Path

from wninit.suite.experiments import info_of
from wninit.suite.report import plots, tables
from wninit.suite.report.reference import FIG1, REFERENCES, TABLE1, TABLE2, scheme_label
from wninit.suite.train.result import FINISHED

__all__ = ["md_table", "experiment_section", "fig1_section", "figure1_table_rows", "figure_name"]


def md_table(header: list[str], rows: list[list]) -> str:
    def cell(v):
        return str(v).replace("|", "\\|").replace("\n", " ")
    lines = ["| " + " | ".join(map(cell, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(map(cell, r)) + " |" for r in rows]
    return "\n".join(lines)


def figure_name(experiment: str, profile: str) -> str:
    return f"{experiment}-{profile}.png"


def _fmt_config(cfg: dict) -> str:
    return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in cfg.items()) or "-"


def _paper(value, digits=2) -> str:
    return "-" if value is None else f"≈{value:.{digits}f}"


def _failures(runs) -> list[str]:
    failed = [r for r in runs if r.status == "failed"]
    lines = [f"- failed `{r.id}`: {(r.error or 'no error text').strip().splitlines()[0][:200]}" for r in failed[:5]]
    if len(failed) > 5:
        lines.append(f"- ... and {len(failed) - 5} more failed runs (`wninit export` lists them)")
    return lines


def experiment_section(experiment: str, profile: str, runs, scale: str, out: Path) -> tuple[str, list]:
    """Markdown for one (experiment, profile) and the PNGs it wrote into `out`: the layout of the experiment's kind
    (wninit.suite.experiments), or a table per configuration for one the registry does not know."""
    info = info_of(experiment)
    kind, title = (info.kind, info.title) if info else (None, experiment)
    counts = tables.status_counts(runs)
    lines = [f"## {title} — `{experiment}`, profile `{profile}`", "",
             f"Scale: {scale}. Runs: {tables.counts_text(counts)}.", ""]
    lines += _failures(runs) + ([""] if _failures(runs) else [])
    figs = []
    png = out / figure_name(experiment, profile)
    if kind == "peers":
        text, fig = _peers(runs, title, scale, png)
    elif kind == "rl":
        text, fig = _rl(runs, title, scale, png)
    elif kind in ("depth", "layers"):
        text, fig = _depth(experiment, kind == "layers", runs, title, scale, png)
    elif kind == "hparams":
        text, fig = _hparams(experiment, runs, title, scale, png)
    elif kind == "survival":
        text, fig = _survival(experiment, runs, title, scale, png)
    elif kind == "wn_vs_bn":
        text, fig = _table1(runs), None
    elif kind == "hessian":
        text, fig = _table2(runs), None
    else:
        text, fig = _generic(runs), None
    if fig is not None:
        figs.append(fig)
        lines += [f"![{title}]({fig.name})", ""]
    lines += [text, ""]
    return "\n".join(lines), figs


def _peers(runs, title, scale, png):
    from wninit.suite.report.peers import peer_cells, peers_markdown, plot_peers

    cells = peer_cells(runs)
    fig = plot_peers(cells, png, title=title, scale=scale) if _finished(runs) else None
    return peers_markdown(cells), fig


def _rl(runs, title, scale, png):
    from wninit.suite.report.rl import plot_rl, rl_curves, rl_markdown

    data = rl_curves(runs)
    fig = plot_rl(data, png, title=title, scale=scale) if _finished(runs) else None
    return rl_markdown(data), fig


def _finished(runs) -> bool:
    return any(r.status in FINISHED for r in runs)


def _depth(experiment, one_epoch, runs, title, scale, png):
    """Accuracy vs depth (Fig. 2), or after one epoch vs number of layers (`one_epoch`, Fig. 3 left)."""
    cells = tables.depth_sweep(runs)
    ref = REFERENCES.get(experiment)
    ref_test = (ref.data if one_epoch else ref.data["test"]) if ref else {}
    ref_train = {} if (one_epoch or not ref) else ref.data.get("train", {})
    fig = None
    if _finished(runs):
        fig = plots.plot_depth(cells, png, title=title, scale=scale, reference=ref,
                               train=not one_epoch,
                               xlabel="number of layers" if one_epoch else "depth (number of WN layers)",
                               ylabel="test accuracy after 1 epoch" if one_epoch else "accuracy (fraction correct)")
    header = ["scheme", "depth", "test acc (ours)", "train acc (ours)", "paper test", "paper train",
              "chosen by val (of the grid)", "grid runs"]
    rows = []
    for (series, depth), c in cells.items():
        rows.append([scheme_label(*series), depth, c.test.text(), c.train.text(),
                     _paper(ref_test.get(depth, {}).get(series)), _paper(ref_train.get(depth, {}).get(series)),
                     _fmt_config(c.chosen) + f" (of {c.n_configs})", tables.counts_text(c.grid)])
    note = f"Paper: {ref.source}, {ref.note}." if ref else ""
    return md_table(header, rows) + ("\n\n" + note if note else ""), fig


def _hparams(experiment, runs, title, scale, png):
    curves = tables.hparam_curves(runs)
    ref = REFERENCES.get(experiment)
    fig = plots.plot_hparams(curves, png, title=title, scale=scale, reference=ref) if _finished(runs) else None
    threshold = tables.trains_threshold(curves)
    summary = []
    for series, results in curves.items():
        n_div = sum(1 for c in results if c.test.counts.get("diverged"))
        good = ref.data["good"].get(series) if ref else None
        paper = "-" if good is None else (f"≈{good[0]}" if good[0] == good[1] else f"≈{good[0]}-{good[1]}") + f" of ≈{ref.data['n_configs']}"
        best, worst = results[0].test.mean if results else None, results[-1].test.mean if results else None
        summary.append([scheme_label(*series), len(results), tables.good_configs(results, threshold), paper,
                        "-" if best is None else f"{best:.3f}", "-" if worst is None else f"{worst:.3f}", n_div])
    text = md_table(["scheme", "configurations", f"trains: test >= {threshold:.3f} (ours)", "paper (test >= 0.9)",
                     "best", "worst", "configs with a diverged seed"], summary)
    text += (f"\n\n\"Trains\" = mean test accuracy >= min(0.9, 0.9 x best / 0.99) = {threshold:.3f}: the paper's 0.9 "
             "when the best configuration reaches its 0.99, scaled down where this run's scale cannot (docs/method.md §9 claim 7).")
    # every configuration, one column per scheme: the sorted curves come from these numbers
    configs = []
    for results in curves.values():
        for c in results:
            if c.config not in configs:
                configs.append(c.config)
    by = {(s, tuple(sorted(c.config.items()))): c.test for s, rs in curves.items() for c in rs}
    rows = [[_fmt_config(cfg)] + [by[(s, tuple(sorted(cfg.items())))].text()
                                  if (s, tuple(sorted(cfg.items()))) in by else "-" for s in curves] for cfg in configs]
    text += "\n\nTest accuracy per configuration (mean ± std over seeds):\n\n" + md_table(
        ["configuration"] + [scheme_label(*s) for s in curves], rows)
    if ref:
        text += f"\n\nPaper: {ref.source}, {ref.note}."
    return text, fig


def _survival(experiment, runs, title, scale, png):
    cells = tables.survival(runs)
    ref = REFERENCES.get(experiment)
    fig = plots.plot_survival(cells, png, title=title, scale=scale, reference=ref) if _finished(runs) else None
    series = list(dict.fromkeys(s for _, _, s in cells))
    header = ["lr", "warmup"] + [h for s in series for h in (f"{scheme_label(*s)} (ours)", "paper")]
    keys = sorted({(lr, w) for lr, w, _ in cells}, key=lambda k: (k[1], k[0]))
    rows = []
    for lr, warm in keys:
        row = [f"{lr:g}", "yes" if warm else "no"]
        for s in series:
            c = cells.get((lr, warm, s))
            p = ref.data.get((lr, warm), {}).get(s) if ref else None
            row += [c.text() if c else "-", "-" if p is None else f"{p}%"]
        rows.append(row)
    horizon = tables.HORIZON
    note = f" Paper: {ref.source}, {ref.note}." if ref else ""
    return (md_table(header, rows) + f"\n\nA run survives when it finishes min({horizon}, its epochs) epochs "
            f"without a NaN loss (docs/method.md §7.4).{note}"), fig


def _table1(runs):
    rows = []
    for (dataset, arch), methods in tables.wn_vs_bn(runs).items():
        for row in methods:
            edge = " (best on its grid's edge)" if row.edges else ""
            rows.append([dataset, arch, row.method, row.error.text(digits=2), _fmt_config(row.chosen) + edge])
    ours = md_table(["dataset", "architecture", "method", "test error % (ours)", "configuration"], rows)
    paper = [[d, a, m, f"{mean:.2f}" + ("" if std is None else f" ± {std:.2f}")]
             for (d, a), entries in TABLE1.data.items() for m, mean, std in entries]
    return (ours + "\n\nA diverged run counts its best checkpoint's error (100% when it diverged in its first epoch). The paper's table (" + TABLE1.source + "; " + TABLE1.note
            + "):\n\n" + md_table(["dataset", "architecture", "method", "test error % (paper)"], paper))


def _table2(runs):
    rows = []
    for (dataset, arch), by in tables.hessian_table(runs).items():
        for series, stat in by.items():
            rows.append([dataset, arch, scheme_label(*series), stat.text(digits=2)])
    ours = md_table(["dataset", "architecture", "scheme", "log spectral norm (ours)"], rows)
    paper = [[d, a, scheme_label(s), f"{m:.2f} ± {sd:.2f}"] for (d, a), by in TABLE2.data.items() for s, (m, sd) in by.items()]
    return (ours + "\n\nA non-finite estimate is counted as diverged and has no value. The paper's table ("
            + TABLE2.source + "; " + TABLE2.note + "):\n\n" + md_table(["dataset", "architecture", "scheme",
                                                                       "log spectral norm (paper)"], paper))


def _generic(runs):
    """An experiment with no paper layout: test accuracy per configuration (seeds pooled)."""
    import collections
    import json

    groups = collections.defaultdict(list)
    for r in runs:
        cfg = tables.config_dict(r)
        for k in ("seed", "device", "threads", "data_root", "download"):
            cfg.pop(k, None)
        groups[json.dumps(cfg, sort_keys=True, default=str)].append(r)
    varying = tables._varying(runs)
    rows = []
    for key, group in groups.items():
        cfg = json.loads(key)
        rows.append([_fmt_config({k: cfg[k] for k in sorted(varying) if k in cfg}),
                     tables._stat(group, "test_acc").text()])
    return "No paper layout for this experiment; test accuracy per configuration:\n\n" + md_table(
        ["configuration", "test acc"], rows)


def figure1_table_rows(rows) -> list[list]:
    """Figure 1 at the spec's table points: ours (mean ± std over the inputs of the first network draw, the one
    plotted) next to [SIM] (docs/method.md §7.1)."""
    first = min((r.draw for r in rows), default=0)
    ours = {(r.panel, r.init, int(r.width), int(r.index)): (r.mean, r.std) for r in rows if r.draw == first}
    names = {"he": "He (g=1)", "proposed-orthogonal": "Proposed (orthogonal)", "proposed-he": "Proposed (He)"}
    out = []
    for (net, init, width), points in FIG1.data.items():
        for (panel, index), (mean, std) in points.items():
            mine = ours.get((f"{net}_{panel}", names[init], width, index))
            if mine is None:
                continue
            ref = f"{mean:.3f}" + ("" if std is None else f" ± {std:.3f}")
            out.append([net, names[init], width, panel, index, f"{mine[0]:.3f} ± {mine[1]:.3f}", ref])
    return out


def fig1_section(rows, png) -> str:
    lines = ["## Figure 1: norm propagation on synthetic data (docs/method.md §7.1)", ""]
    if png:
        lines += [f"![Figure 1]({Path(png).name})", ""]
    lines += [md_table(["net", "init", "width", "panel", "layer/block", "ours", "expected [SIM]"],
                       figure1_table_rows(rows)), "", f"Expected: {FIG1.source}, {FIG1.note}.", ""]
    return "\n".join(lines)
