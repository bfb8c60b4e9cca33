"""The vocabulary of a judged claim (docs/method.md §9): its five verdicts, the `Finding` a judging function
returns, the `Claim` record (a finding under its claim's number and name), and how the verdicts of a
claim's parts combine into one.

A part is `(text, outcome)`: the numbers it was judged on, and True (supported), False (contradicted),
`UNDECIDED` (its test separates neither way), `NOT_AFTER_HOLM` (its test rejects against the claim on its own,
not after Holm's correction over the claim's tests: stats.decide_family), None (its runs have not finished), `PLATEAU` (it would be
contradicted or undecided, or supported by a win of an init, but every run of an init it compares, or of the
winner, is still on its initial plateau: the runs say nothing about the init at this scale) or `EDGE` (it would be contradicted, but a compared init's best
configuration lies on its grid's edge: the grid does not bracket that init's optimum).
"""
from __future__ import annotations

from dataclasses import dataclass

from wninit.suite.report.stats import ALPHA, NOT_AFTER_HOLM, UNDECIDED

__all__ = ["Claim", "Finding", "HOLDS", "FAILS", "NOT_RUN", "INCONCLUSIVE", "NOT_TRAINED", "VERDICTS", "PLATEAU", "EDGE",
           "judge", "detail", "num"]

HOLDS, FAILS, NOT_RUN, INCONCLUSIVE = "holds", "does not hold", "not run", "inconclusive"
NOT_TRAINED = "not trained at this scale"
VERDICTS = (HOLDS, FAILS, INCONCLUSIVE, NOT_TRAINED, NOT_RUN)
PLATEAU, EDGE = "plateau", "grid edge"  # a part's outcomes besides True / False / UNDECIDED / None

Part = tuple[str, "bool | str | None"]


@dataclass(frozen=True)
class Finding:
    """What a judging function finds: a verdict, the scale it was judged at, the numbers and the statistics."""
    verdict: str  # one of VERDICTS
    scale: str
    detail: str
    test: str = ""


@dataclass(frozen=True)
class Claim:
    """One claim of the paper judged on what was run."""
    number: int
    name: str
    verdict: str  # one of VERDICTS
    scale: str  # what was run: "synthetic, widths 200/1000", "quick profile: mnist5k, depths 2-50, 2 seeds"
    detail: str  # the numbers the verdict was judged on
    test: str = ""  # the statistics it was judged with: the test, its level, the p-values or bounds


def judge(parts: list[Part]) -> str:
    """Any False -> does not hold; else any None -> not run (a claim never "holds" on missing data); else any
    PLATEAU -> not trained at this scale; else any UNDECIDED, NOT_AFTER_HOLM or EDGE -> inconclusive; else holds."""
    if any(ok is False for _, ok in parts):
        return FAILS
    if any(ok is None for _, ok in parts) or not parts:
        return NOT_RUN
    if any(ok == PLATEAU for _, ok in parts):
        return NOT_TRAINED
    return INCONCLUSIVE if any(ok in (UNDECIDED, NOT_AFTER_HOLM, EDGE) for _, ok in parts) else HOLDS


def detail(parts: list[Part]) -> str:
    """The parts' texts joined, each not-supported one marked with its outcome."""
    marks = {True: "", False: " [fails]", None: " [not run yet]", UNDECIDED: " [undecided]",
             NOT_AFTER_HOLM: f" [against the claim at level {ALPHA} alone, not after Holm's correction over the claim's tests]",
             PLATEAU: " [not trained: every run of an init on its initial plateau]",
             EDGE: " [contradicted, but a best configuration is on its grid's edge]"}
    return "; ".join(text + marks[ok] for text, ok in parts)


def num(v, digits: int = 3) -> str:
    """`v` with `digits` decimals, "n/a" for None."""
    return "n/a" if v is None else f"{v:.{digits}f}"
