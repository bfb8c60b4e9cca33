"""The published pages are renders of the committed stores: docs/claims.md and docs/results.md each hold blocks
between `<!-- BEGIN rendered: NAME -->` and `<!-- END rendered: NAME -->` that this module writes from the
stores in docs/stores/ with the code beside them. `python -m wninit.suite.report.pages`, run from the repository root, rewrites the blocks;
`--check` lists the stale ones and exits 1 (tests/test_pages.py asserts none is).
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

from wninit.suite.experiments import of_kind
from wninit.suite.train.result import FINISHED
from wninit.suite._files import atomic_write_text
from wninit.suite.report.scope import PLATEAU_MARGIN
from wninit.suite.report.verdicts import num

__all__ = ["STORES", "BLOCKS", "claims_block", "isa_block", "plateau_block", "rl_block", "plateau_length", "rendered_blocks", "render_pages"]

STORES = Path("docs") / "stores"  # relative to the repository root
QUICK_STORE, BEYOND_STORE, FIGURE1 = "quick.db", "beyond.db", "figure1.csv"
# the quick runs made with another instruction set than this machine's, one store each: quick_isa_NAME.db
OTHER_ISA_STORES = "quick_isa_*.db"


def claims_block(root: Path) -> str:
    """The claims table, judged on docs/stores/quick.db (every profile it holds) and Figure 1's stored rows."""
    from wninit.suite.report.claim_book import judge_all
    from wninit.suite.report.render import claims_markdown, open_store, read_figure1_csv

    store = open_store(root / STORES / QUICK_STORE)
    try:
        claims = judge_all(store, read_figure1_csv(root / STORES / FIGURE1))
    finally:
        store.close()
    return claims_markdown(claims)


def isa_block(root: Path) -> str:
    """The store-judged claims at the quick profile, once per instruction set of docs/stores/quick.db and of every
    docs/stores/quick_isa_*.db, and the claims whose verdict flips between them (report/isa.py)."""
    from wninit.suite.report.isa import by_isa, isa_markdown
    from wninit.suite.report.render import open_store

    paths = [root / STORES / QUICK_STORE, *sorted((root / STORES).glob(OTHER_ISA_STORES))]
    stores = {path.name: open_store(path) for path in paths}
    try:
        return isa_markdown(by_isa(stores, profile="quick"))
    finally:
        for store in stores.values():
            store.close()


def plateau_length(rows: list[dict], classes: int = 10) -> int | None:
    """The first epoch (1-based) whose training loss is PLATEAU_MARGIN below ln C; None if none is."""
    for i, row in enumerate(rows, 1):
        loss = row["train_loss"]
        if loss is not None and math.isfinite(loss) and loss < math.log(classes) - PLATEAU_MARGIN:
            return i
    return None


def _collapsed(rows: list[dict], left: int | None) -> bool:
    """Left the plateau, then ended predicting (about) one class: final training accuracy below 0.15."""
    return left is not None and rows[-1]["train_acc"] is not None and rows[-1]["train_acc"] < 0.15


def plateau_block(root: Path) -> str:
    """The plateau length (epochs until the training loss is 0.05 below ln 10) of each run of the plateau experiment
    (the registry's one of kind "plateau"), by depth, rate, gain and conv biases, with the final test accuracy and
    whether the run collapsed to one class; then, where the store holds both, the collapse rate with the conv biases
    held at 0 against trained ones (Fisher's exact one-sided test)."""
    from wninit.suite.report.render import open_store
    from wninit.suite.report.sections import md_table
    from wninit.suite.report.stats import fisher_p, fmt_p

    store = open_store(root / STORES / BEYOND_STORE)
    try:
        runs = store.runs(of_kind("plateau").name)
        epochs = {r.id: store.epochs(r.id) for r in runs if r.status in FINISHED}
    finally:
        store.close()
    groups: dict = {}
    for r in sorted(runs, key=lambda r: (r.config.freeze_conv_bias, r.config.lr, r.config.depth, r.config.padding_gain,
                                         r.config.seed)):
        c = r.config
        groups.setdefault((c.depth, c.lr, c.padding_gain, c.freeze_conv_bias, c.epochs), []).append(r)
    table, collapses = [], {}
    for key, rs in groups.items():
        depth, lr, padding, frozen, n_epochs = key
        done = [r for r in rs if r.id in epochs]
        lengths = [plateau_length(epochs[r.id]) for r in done]
        shown = [f"seed {r.config.seed}: {x if x is not None else f'>{n_epochs}'}" for r, x in zip(done, lengths)]
        left = [x for x in lengths if x is not None]
        mean = f"{sum(left) / len(left):.1f} ({len(left)}/{len(done)} left)" if left else f"none of {len(done)} left"
        collapsed = sum(_collapsed(epochs[r.id], x) for r, x in zip(done, lengths))
        collapses[key] = (collapsed, len(done))
        waiting = ", ".join(str(r.config.seed) for r in rs if r.id not in epochs) or "-"
        table.append([str(depth), num(lr), "padding-aware" if padding else "paper", "held at 0" if frozen else "trained",
                      "; ".join(shown) or "-", mean, ", ".join(num(r.metrics.get("test_acc")) for r in done) or "-",
                      f"{collapsed}/{len(done)}", waiting])
    text = md_table(["depth", "lr", "gain", "conv biases", "plateau length (epochs; >N: not left in N)",
                     "mean of those that left", "test accuracy by seed", "collapsed to one class", "seeds not finished"],
                    table)
    tests = []
    for (depth, lr, padding, frozen, n_epochs), (k_held, n_held) in collapses.items():
        trained = collapses.get((depth, lr, padding, False, n_epochs))  # the same runs with the biases trained
        if frozen and trained and n_held and trained[1]:
            p = fisher_p(trained[0], trained[1], k_held, n_held)
            tests.append(f"- depth {depth}, lr {num(lr)}: collapsed with the conv biases trained {trained[0]}/{trained[1]}, "
                         f"held at 0 {k_held}/{n_held} (Fisher's exact one-sided test that trained biases collapse "
                         f"more often: {fmt_p(p)})")
    return "\n\n".join([text, *(["\n".join(tests)] if tests else [])])


def rl_block(root: Path) -> str:
    """The RL experiment's table per profile in docs/stores/quick.db: return per trunk (mean ± std over seeds)
    beside the poster's, and claim 12's finding at that profile."""
    from wninit.suite.report.render import open_store
    from wninit.suite.report.rl import rl_claim, rl_curves, rl_markdown

    info = of_kind("rl")
    name, claims = info.name, ", ".join(str(c) for c in info.claims)
    store = open_store(root / STORES / QUICK_STORE)
    try:
        profiles = [p for e, p in store.experiments() if e == name]
        parts = []
        for profile in profiles:
            data = rl_curves(store.runs(name, profile))
            finding = rl_claim(data, f"{profile} profile")
            parts.append(f"**{profile} profile** (claim {claims}: {finding.verdict}; {finding.detail}; "
                         f"{finding.test})\n\n{rl_markdown(data)}")
    finally:
        store.close()
    return "\n\n".join(parts) or f"no run of {name} in {QUICK_STORE}"


BLOCKS = {"claims": ("docs/claims.md", claims_block), "isa": ("docs/claims.md", isa_block),
          "plateau": ("docs/results.md", plateau_block), "rl": ("docs/results.md", rl_block)}


def _markers(name: str) -> tuple[str, str]:
    return f"<!-- BEGIN rendered: {name} -->", f"<!-- END rendered: {name} -->"


def rendered_blocks(page_text: str, name: str) -> str | None:
    """The text between the page's markers for `name` (None when the page has none)."""
    begin, end = _markers(name)
    if begin not in page_text or end not in page_text:
        return None
    return page_text.split(begin, 1)[1].split(end, 1)[0].strip("\n")


def render_pages(root: Path, check: bool = False) -> list[str]:
    """Render every block of BLOCKS; write the pages (unless `check`); return the names of the blocks that were
    stale (or missing their markers)."""
    stale = []
    for name, (page, render) in BLOCKS.items():
        path = root / page
        text = path.read_text()
        fresh = render(root)
        if rendered_blocks(text, name) == fresh:
            continue
        stale.append(name)
        begin, end = _markers(name)
        if not check and begin in text and end in text:
            head, rest = text.split(begin, 1)
            atomic_write_text(path, f"{head}{begin}\n{fresh}\n{end}{rest.split(end, 1)[1]}")
    return stale


if __name__ == "__main__":
    repo = Path.cwd()  # run from the repository root
    names = render_pages(repo, check="--check" in sys.argv)
    print(("stale: " if "--check" in sys.argv else "rewritten: ") + (", ".join(names) or "none"))
    sys.exit(1 if names and "--check" in sys.argv else 0)
