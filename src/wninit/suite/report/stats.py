"""The statistics each claim is judged with (report/claims.py): one-sided tests and bounds at level 0.05.

A comparison is *supported* when its one-sided test rejects the null in the paper's direction (p < ALPHA),
*contradicted* when the test in the opposite direction rejects it, and *undecided* otherwise: a quick
profile's few seeds may not separate two inits, and a verdict must then say so rather than read a sign
off two means. scipy (a dependency of scikit-learn, in the `suite` extra) is imported where used.
"""
from __future__ import annotations

import math

__all__ = ["ALPHA", "UNDECIDED", "NOT_AFTER_HOLM", "welch_p", "mean_bound", "sign_test_p", "fisher_p", "decide",
           "decide_family", "fmt_p", "clopper_pearson"]

ALPHA = 0.05
UNDECIDED = "undecided"  # a part's outcome besides True / False / None (not run)
# a part whose test against the claim rejects on its own but not after Holm's correction over the claim's tests
# (decide_family): undecided, with that said
NOT_AFTER_HOLM = "not after Holm"


def _clean(values) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(v)]


def welch_p(a, b, alternative: str = "less") -> float | None:
    """One-sided p-value of Welch's t-test that mean(a) < mean(b) (`"less"`) or > (`"greater"`).

    None with fewer than 2 values on a side. When both samples are constant (every seed diverged to
    the same value, say) there is no variance to test against: p is 0 when the means differ in the
    tested direction, else 1.
    """
    a, b = _clean(a), _clean(b)
    if len(a) < 2 or len(b) < 2:
        return None
    if max(a) == min(a) and max(b) == min(b):
        lower = a[0] < b[0] if alternative == "less" else a[0] > b[0]
        return 0.0 if lower else 1.0
    from scipy import stats

    return float(stats.ttest_ind(a, b, equal_var=False, alternative=alternative).pvalue)


def mean_bound(values, side: str = "lower", level: float = 1 - ALPHA) -> float | None:
    """One-sided Student-t confidence bound of the mean: mean -/+ t_{level, n-1} * s / sqrt(n).

    None with fewer than 2 values; the mean itself when the values are all equal.
    """
    v = _clean(values)
    if len(v) < 2:
        return None
    from scipy import stats

    mean = sum(v) / len(v)
    sd = math.sqrt(sum((x - mean) ** 2 for x in v) / (len(v) - 1))
    half = float(stats.t.ppf(level, len(v) - 1)) * sd / math.sqrt(len(v))
    return mean - half if side == "lower" else mean + half


def sign_test_p(wins: int, losses: int) -> float:
    """Exact one-sided sign test (McNemar on paired configurations): P(X >= wins), X ~ Bin(wins+losses, 1/2)."""
    n = wins + losses
    if n == 0:
        return 1.0
    return sum(math.comb(n, k) for k in range(wins, n + 1)) / 2 ** n


def fisher_p(k1: int, n1: int, k2: int, n2: int, alternative: str = "greater") -> float:
    """One-sided Fisher exact p-value that the rate k1/n1 is greater (or `"less"`) than k2/n2."""
    from scipy import stats

    return float(stats.fisher_exact([[k1, n1 - k1], [k2, n2 - k2]], alternative=alternative)[1])


def decide(p_for: float | None, p_against: float | None):
    """True (supported), False (contradicted) or UNDECIDED; None when there is nothing to test."""
    if p_for is None or p_against is None:
        return None
    if p_for < ALPHA:
        return True
    return False if p_against < ALPHA else UNDECIDED


def decide_family(tests: list[tuple[float | None, float | None]]) -> list:
    """`decide` for the (p_for, p_against) tests of one claim's comparisons, as one family.

    Each comparison is supported by its own test at ALPHA: a claim holds only when every part is supported (an
    intersection-union test, level ALPHA without correction). But it does not hold when any one part is
    contradicted, and with m tests at ALPHA each that happens by chance up to m x ALPHA of the time; so a
    contradiction needs Holm's step-down over the family's tests against the claim to reject it, at family-wise
    level ALPHA. A test that rejects against the claim on its own but not after the correction is
    NOT_AFTER_HOLM (undecided, with that said)."""
    against = sorted((p, i) for i, (_, p) in enumerate(tests) if p is not None)
    rejected = set()
    for k, (p, i) in enumerate(against):
        if p >= ALPHA / (len(against) - k):
            break
        rejected.add(i)
    out = []
    for i, (p_for, p_against) in enumerate(tests):
        ok = decide(p_for, p_against)
        out.append(NOT_AFTER_HOLM if ok is False and i not in rejected else ok)
    return out


def fmt_p(p: float | None) -> str:
    if p is None:
        return "p n/a"
    return "p < 1e-4" if p < 1e-4 else f"p = {p:.3g}"


def clopper_pearson(k: int, n: int) -> tuple[float, float] | None:
    """The exact (Clopper-Pearson) 95% confidence interval of a proportion k/n; None when n = 0."""
    if n == 0:
        return None
    from scipy import stats

    lo = 0.0 if k == 0 else float(stats.beta.ppf(0.025, k, n - k + 1))
    hi = 1.0 if k == n else float(stats.beta.ppf(0.975, k + 1, n - k))
    return lo, hi
