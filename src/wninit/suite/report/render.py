"""A store -> `DIR/report.md` + PNGs: each experiment's table beside the paper's numbers (docs/method.md §7), its
figure, and the claims of docs/method.md §9 judged on what was run.

`render_report` is what `wninit report` and `wninit reproduce` call. Bad input (a missing or
foreign file, a store with no runs, an output folder that cannot be written) is one UserError sentence.
"""
from __future__ import annotations

import csv
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from wninit.suite._files import atomic_write_text
from wninit.errors import UserError
from wninit.suite.report import tables
from wninit.suite.report.claim_book import judge_all, scale_of
from wninit.suite.report.sections import experiment_section, fig1_section, md_table
from wninit.suite.train.result import FINISHED

__all__ = ["render_report", "Report", "open_store", "read_figure1_csv", "claims_text", "claims_markdown",
           "FIGURE1_CSV", "FIGURE1_PNG", "prepare_out", "judge_claims", "machines_text"]

FIGURE1_CSV, FIGURE1_PNG = "figure1.csv", "figure1.png"


@dataclass
class Report:
    path: Path  # DIR/report.md
    claims: list
    figures: list = field(default_factory=list)  # PNG paths written
    experiments: list = field(default_factory=list)  # (experiment, profile) pairs reported
    machines: str = ""  # which machines made the runs (machines_text)


def open_store(path):
    """Open an existing store for reading; every way it can be wrong is one sentence."""
    from wninit.suite.sweep.store import Store

    return Store(path, create=False)


def read_figure1_csv(path) -> list:
    """Rows of `wninit.diagnostics.synthetic.rows_to_csv` back as Figure1Row tuples (None if absent); a CSV
    written before the draw column holds one draw, draw 0."""
    from wninit.diagnostics.synthetic import Figure1Row

    p = Path(path)
    if not p.is_file():
        return None
    with p.open(newline="") as fh:
        reader = csv.DictReader(fh)
        try:
            return [Figure1Row(r["panel"], r["init"], int(r["width"]), int(r["index"]), float(r["mean"]),
                               float(r["std"]), int(r.get("draw") or 0)) for r in reader]
        except (KeyError, ValueError):
            raise UserError(f"{p} is not a Figure 1 CSV (columns panel,init,width,index,mean,std); delete it or "
                            "rerun `wninit reproduce`") from None


def prepare_out(out) -> Path:
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"output folder {str(out)!r} is a file; pass a folder for --out")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create output folder {str(out)!r} ({exc.strerror}); pass a writable --out") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise UserError(f"output folder {str(out)!r} is not writable; pass a writable --out")
    return out


def machines_text(runs) -> str:
    """Which machines made the finished `runs`: CPU model, the instruction set its kernels used, the GPU, and
    whether the kernels were pinned (portable mode), with the runs each made (docs/reproducibility.md)."""
    made = Counter()
    for r in runs:
        if r.status in FINISHED:
            kernels = f"kernels {r.isa or 'not recorded'}{', portable' if r.config.portable else ''}"
            made[", ".join(x for x in (r.cpu or "CPU not recorded", kernels, r.gpu and f"GPU {r.gpu}") if x)] += 1
    if not made:
        return "Made on: no finished runs yet."
    return "Made on: " + "; ".join(f"{m} ({n} runs)" for m, n in made.most_common()) + "."


def judge_claims(store, figure1_rows=None, profile: str | None = None) -> list:
    """Every claim of docs/method.md §9 (1-12) on this store (and the Figure 1 rows when given): claim_book.judge_all."""
    return judge_all(store, figure1_rows, profile)


def claims_markdown(claims) -> str:
    rows = [[str(c.number), c.name, f"**{c.verdict}**", c.scale, c.detail, c.test or "-"] for c in claims]
    return md_table(["#", "claim (docs/method.md §9)", "verdict", "scale run", "numbers", "judged with"], rows)


def claims_text(claims, width: int = 100) -> str:
    """The claims table for a terminal: one line per claim, then its numbers indented."""
    import textwrap

    lines = [f"{'#':>2}  {'verdict':<13}  claim (docs/method.md §9)"]
    for c in claims:
        lines.append(f"{c.number:>2}  {c.verdict:<13}  {c.name}  [{c.scale}]")
        lines += textwrap.wrap(c.detail, width=width, initial_indent=" " * 19, subsequent_indent=" " * 19)
        if c.test:
            lines += textwrap.wrap("judged with: " + c.test, width=width, initial_indent=" " * 19,
                                   subsequent_indent=" " * 19)
    return "\n".join(lines)


def render_report(store_path, out, *, figure1_rows=None, figure1_png=None) -> Report:
    """Write `out/report.md`, one PNG per figure and `out/claims.md`; return what was written.

    `figure1_rows` (from [`wninit.diagnostics.synthetic.figure1`][]) adds Figure 1 and claims 1-3;
    when None, `out/figure1.csv` is used if present.
    """
    store = open_store(store_path)
    try:
        all_runs = store.runs()
        if not all_runs:
            raise UserError(f"store {store_path} holds no runs; run `wninit sweep SPEC --store {store_path}` "
                            "(or `wninit reproduce`) first")
        out = prepare_out(out)
        if figure1_rows is None:
            figure1_rows = read_figure1_csv(out / FIGURE1_CSV)
        report = Report(out / "report.md", claims=[])
        body = []
        if figure1_rows:
            body.append(fig1_section(figure1_rows, figure1_png or (FIGURE1_PNG if (out / FIGURE1_PNG).exists() else None)))
        for experiment, profile in store.experiments():
            runs = store.runs(experiment, profile)
            text, figs = experiment_section(experiment, profile, runs, scale_of(profile, runs), out)
            body.append(text.rstrip("\n") + "\n\n" + machines_text(runs) + "\n")
            report.figures += figs
            report.experiments.append((experiment, profile))
        report.claims = judge_claims(store, figure1_rows)
    finally:
        store.close()
    counts = tables.status_counts(all_runs)
    head = [f"# wninit report: {Path(store_path).name}", "",
            f"Store `{store_path}`: {len(all_runs)} runs, {counts.get('completed', 0)} completed, "
            f"{counts.get('diverged', 0)} diverged, {counts.get('failed', 0)} failed, "
            f"{counts.get('not_run', 0)} not run (pending or running).", "", machines_text(all_runs), "",
            "Conventions: mean ± sample std over seeds, with the runs behind each number (`n`); a diverged run "
            "counts its best checkpoint's accuracy, as the reference code records it, or 0 when it diverged in its "
            "first epoch (the paper plots that at 0), and is counted as diverged; failed runs have no value and are "
            "counted; where a grid of hyper-parameters was run, the configuration with the best mean validation "
            "accuracy is shown. The paper's values are from docs/method.md §7 (`wninit/suite/report/reference.py`); those read "
            "off the poster's plots are ±0.02.", "",
            "## Claims (docs/method.md §9)", "", claims_markdown(report.claims), ""]
    text = "\n".join(head + body) + "\n"
    try:
        atomic_write_text(report.path, text)
        atomic_write_text(out / "claims.md", "# Claims of the paper (docs/method.md §9), as judged by `wninit report`\n\n"
                          + machines_text(all_runs) + "\n\n" + claims_markdown(report.claims) + "\n")
    except OSError as exc:
        raise UserError(f"cannot write the report to {str(out)!r} ({exc.strerror}); pass a writable --out") from None
    report.machines = machines_text(all_runs)
    return report

