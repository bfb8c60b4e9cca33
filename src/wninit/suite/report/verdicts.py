"""The vocabulary of a judged claim (docs/method.md §9): its four verdicts, the `Claim` record, and how the
verdicts of a claim's parts combine into one.

A part is `(text, outcome)`: the numbers it was judged on, and True (supported), False (contradicted),
`UNDECIDED` (its test separates neither way) or None (its runs have not finished).
"""
from __future__ import annotations

from dataclasses import dataclass

from wninit.suite.report.stats import UNDECIDED

__all__ = ["Claim", "HOLDS", "FAILS", "NOT_RUN", "INCONCLUSIVE", "judge", "detail", "num"]

HOLDS, FAILS, NOT_RUN, INCONCLUSIVE = "holds", "does not hold", "not run", "inconclusive"

Part = tuple[str, "bool | str | None"]


@dataclass(frozen=True)
class Claim:
    """One claim of the paper judged on what was run."""
    number: int
    name: str
    verdict: str  # HOLDS, FAILS, INCONCLUSIVE or NOT_RUN
    scale: str  # what was run: "synthetic, widths 200/1000", "quick profile: mnist5k, depths 2-50, 2 seeds"
    detail: str  # the numbers the verdict was judged on
    test: str = ""  # the statistics it was judged with: the test, its level, the p-values or bounds


def judge(parts: list[Part]) -> str:
    """Any False -> does not hold; else any None -> not run (a claim never "holds" on missing data); else any
    UNDECIDED -> inconclusive; else holds."""
    if any(ok is False for _, ok in parts):
        return FAILS
    if any(ok is None for _, ok in parts) or not parts:
        return NOT_RUN
    return INCONCLUSIVE if any(ok == UNDECIDED for _, ok in parts) else HOLDS


def detail(parts: list[Part]) -> str:
    """The parts' texts joined, each not-supported one marked with its outcome."""
    marks = {True: "", False: " [fails]", None: " [not run yet]", UNDECIDED: " [undecided]"}
    return "; ".join(text + marks[ok] for text, ok in parts)


def num(v, digits: int = 3) -> str:
    """`v` with `digits` decimals, "n/a" for None."""
    return "n/a" if v is None else f"{v:.{digits}f}"
