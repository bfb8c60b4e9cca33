"""Where the protocol can give a verdict (docs/claims.md, "Where a verdict can be given"): runs still on their initial plateau, and a best
configuration on the edge of its grid.

A comparison says something about an init only when the init was trained: a run whose final training loss is
within `PLATEAU_MARGIN` of ln C (C classes; the loss of a constant, uniform prediction) has not left the
plateau it starts on, and its accuracy measures the budget, not the init. And an init's best configuration
is its optimum only when the grid brackets it: a best value at the smallest or largest value run could be
beaten just beyond. A part of a claim that would be contradicted (or undecided) under either condition gets
its own outcome (verdicts.PLATEAU, verdicts.EDGE) instead of "does not hold".
"""
from __future__ import annotations

import math

from wninit.suite.train.result import FINISHED
from wninit.suite.report.stats import NOT_AFTER_HOLM, UNDECIDED
from wninit.suite.report.verdicts import EDGE, PLATEAU

__all__ = ["PLATEAU_MARGIN", "final_losses", "on_plateau", "never_trained", "guard", "edge_note", "edges_note"]

# A margin of 0.05 nats around ln 10 = 2.303 is a prediction within about 5% of uniform in likelihood; a run
# that has started to separate the classes is below it within an epoch or two (docs/claims.md, "Where a verdict can be given").
PLATEAU_MARGIN = 0.05


def final_losses(store, runs) -> dict:
    """{run id: the training loss of its last stored epoch} for the finished runs (None without an epoch row)."""
    out = {}
    for r in runs:
        if r.status in FINISHED:
            rows = store.epochs(r.id)
            out[r.id] = rows[-1]["train_loss"] if rows else None
    return out


def on_plateau(loss, classes: int) -> bool:
    """A final training loss within PLATEAU_MARGIN of ln C. A non-finite loss (a divergence) is not a plateau."""
    return loss is not None and math.isfinite(loss) and abs(loss - math.log(classes)) <= PLATEAU_MARGIN


def never_trained(runs, final_loss: dict, classes: int) -> bool:
    """Every finished run of `runs` ended on its initial plateau (False with no finished run or no loss known)."""
    done = [r for r in runs if r.status in FINISHED]
    return bool(done) and all(on_plateau(final_loss.get(r.id), classes) for r in done)


def guard(ok, cells, final_loss: dict | None, classes: int, better=None):
    """The outcome of a part judged on `cells` (tables.DepthCell), where the protocol can give one: PLATEAU for a
    contradicted or undecided part when every run of one of the cells is on its plateau, and for a supported
    comparison when every run of `better` (the cell the claim says wins) is, since a win by an init that was
    never trained (over one that diverged, say) says nothing about it; EDGE for a contradicted part when one of
    the cells' best configuration is on its grid's edge; else `ok` itself."""
    if final_loss is not None:
        if (ok is False or ok in (UNDECIDED, NOT_AFTER_HOLM)) and any(never_trained(c.runs, final_loss, classes) for c in cells):
            return PLATEAU
        if ok is True and better is not None and never_trained(better.runs, final_loss, classes):
            return PLATEAU
    if ok is False and any(c.edges for c in cells):
        return EDGE
    return ok


def edge_note(cells: dict, label) -> str:
    """"best on a grid edge: Proposed (He) depth 50 lr=0.001; ..." for every flagged depth cell, "" when none is."""
    return edges_note([(f"{label(*series)} depth {depth}", c.edges) for (series, depth), c in cells.items()])


def edges_note(named: list[tuple[str, dict]]) -> str:
    """The same note for any (name, grid edges) pairs: "; best on a grid edge (...): NAME lr=0.001; ...", "" when
    no pair has an edge."""
    flagged = [f"{name} " + ", ".join(f"{k}={v:g}" for k, v in edges.items()) for name, edges in named if edges]
    return "; best on a grid edge (the grid does not bracket it): " + "; ".join(flagged) if flagged else ""
