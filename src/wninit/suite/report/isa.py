"""The claims judged once per instruction set, and the ones whose verdict flips between them
(docs/reproducibility.md, "The machine of each result").

torch's float32 kernels differ between instruction sets (AVX2, AVX-512, ATen's DEFAULT), a training run turns
the last bits into another run, and a verdict judged on those runs can move with them. Each store records the
instruction set each run's kernels used (its `isa`); here every store given is split by it, each part is judged
as a store of its own (`claim_book.judge_all`, one profile), and a claim whose verdicts on two parts are both
judged and differ is flagged. A claim judged without a store (Figure 1, the gain formula) is the same computation
on every machine and is not listed.
"""
from __future__ import annotations

from dataclasses import dataclass

from wninit.suite.report.claim_book import CLAIMS, judge_all
from wninit.suite.report.verdicts import NOT_RUN
from wninit.suite.train.result import WAITING

__all__ = ["IsaVerdicts", "by_isa", "flipped", "isa_markdown"]


def _isa(run) -> str | None:
    """The instruction set a run's kernels used; None for a run not run yet (it has none)."""
    return None if run.status in WAITING else run.isa or "not recorded"


class _OneIsa:
    """A store seen through the runs whose kernels used `isa`, and the runs that have not run yet (they keep an
    incomplete experiment "not run" on every instruction set)."""

    def __init__(self, store, isa: str):
        self._store, self.isa = store, isa

    def experiments(self):
        return self._store.experiments()

    def runs(self, experiment=None, profile=None):
        return [r for r in self._store.runs(experiment, profile) if _isa(r) in (self.isa, None)]

    def epochs(self, run_id: str):
        return self._store.epochs(run_id)


@dataclass(frozen=True)
class IsaVerdicts:
    """The store-judged claims on the runs of one instruction set of one store."""
    label: str  # the instruction set, with the store's file name where two stores share it
    claims: dict  # claim number -> Claim


def by_isa(stores: dict, profile: str = "quick") -> list[IsaVerdicts]:
    """Every store of `stores` ({name: open Store}) split by the instruction set of its finished runs at `profile`
    (a store's runs of other profiles, made elsewhere, add no column), each part's store-judged claims at
    `profile`; in the order of the stores, then of the instruction sets."""
    numbers = {c.number for c in CLAIMS if c.experiment is not None}
    parts = []
    for name, store in stores.items():
        runs = [r for experiment, p in store.experiments() if p == profile for r in store.runs(experiment, p)]
        for isa in sorted({_isa(r) for r in runs} - {None}):
            claims = {c.number: c for c in judge_all(_OneIsa(store, isa), profile=profile) if c.number in numbers}
            parts.append((name, isa, claims))
    labels = [isa for _, isa, _ in parts]
    return [IsaVerdicts(isa if labels.count(isa) == 1 else f"{isa} ({name})", claims) for name, isa, claims in parts]


def flipped(parts: list[IsaVerdicts], number: int) -> bool:
    """Whether claim `number` has two different verdicts among the parts that judged it (a "not run" is not a
    verdict to compare)."""
    return len({p.claims[number].verdict for p in parts if p.claims[number].verdict != NOT_RUN}) > 1


def isa_markdown(parts: list[IsaVerdicts]) -> str:
    """One row per store-judged claim: its verdict on each instruction set and whether it flips between them."""
    from wninit.suite.report.sections import md_table

    if not parts:
        return "No finished runs: no verdict to compare between instruction sets."
    rows = []
    for spec in (c for c in CLAIMS if c.experiment is not None):
        verdicts = [p.claims[spec.number].verdict for p in parts]
        judged = [p.label for p in parts if p.claims[spec.number].verdict != NOT_RUN]
        if flipped(parts, spec.number):
            between = "**flips**: " + "; ".join(f"{v} on {p.label}" for p, v in zip(parts, verdicts) if v != NOT_RUN)
        elif len(judged) > 1:
            between = f"same on {', '.join(judged)}"
        else:
            between = "-" if not judged else f"judged on {judged[0]} only"
        rows.append([str(spec.number), spec.name, *verdicts, between])
    return md_table(["#", "claim (docs/method.md §9)", *(f"kernels {p.label}" for p in parts),
                     "between instruction sets"], rows)
