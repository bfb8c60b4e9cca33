"""Claim 12 and the RL figure (docs/method.md §7.7, §9.12) on made-up curves whose verdict is known."""
from types import SimpleNamespace

import pytest

from wninit.suite.report.claim_book import claim_spec
from wninit.suite.report.rl import RLCurves, plot_rl, rl_claim, rl_curves, rl_markdown
from wninit.suite.report.verdicts import FAILS, HOLDS, NOT_RUN


def _run(norm, scheme, seed, returns, status="completed"):
    cfg = {"norm": norm, "scheme": scheme, "seed": seed}
    return SimpleNamespace(config=cfg, status=status, metrics={"returns": returns} if status == "completed" else {})


def _store_runs(prop_end: float, default_end: float, pending: int = 0):
    runs = []
    for seed, jitter in ((1, 0.0), (2, 0.3), (3, -0.2)):
        runs.append(_run("wn", "proposed", seed, [[100, 0.3 + jitter / 10], [200, prop_end + jitter]]))
        runs.append(_run("wn", "pytorch-default", seed, [[100, 0.3], [200, default_end + jitter]]))
        runs.append(_run("none", "pytorch-default", seed, [[100, 0.3], [200, 1.0 + jitter]]))
    runs += [_run("wn", "pytorch-default", 9, None, status="pending")] * pending
    return runs


def test_claim_12_holds_when_proposed_learns_and_default_does_not():
    claim = claim_spec(12).claim(rl_claim(rl_curves(_store_runs(prop_end=5.0, default_end=0.3)), "test"))
    assert claim_spec(12).experiment == "rl_minatar"
    assert claim.number == 12 and claim.verdict == HOLDS, claim.detail
    assert "Welch" in claim.test and "5.03 vs 0.33" in claim.detail


def test_claim_12_fails_when_default_ends_higher_and_waits_for_pending_runs():
    assert rl_claim(rl_curves(_store_runs(prop_end=0.3, default_end=5.0)), "test").verdict == FAILS
    held = rl_claim(rl_curves(_store_runs(prop_end=5.0, default_end=0.3, pending=1)), "test")
    assert held.verdict == NOT_RUN  # a pending default run could still change the comparison
    assert rl_claim(RLCurves(), "test").verdict == NOT_RUN and rl_claim().verdict == NOT_RUN


def test_rl_table_and_figure(tmp_path):
    pytest.importorskip("matplotlib")
    data = rl_curves(_store_runs(prop_end=5.0, default_end=0.3))
    text = rl_markdown(data)
    assert "5.03 ± 0.25" in text and "-21 throughout" in text
    png = plot_rl(data, tmp_path / "rl.png", title="t", scale="s")
    assert png.exists() and png.stat().st_size > 10_000


def test_descriptive_columns_steps_to_leave_and_tail_mean():
    """Beside the claim's statistic: per seed, the steps after which the return first exceeds 1.0, and the mean
    of the last 10 chunks; a seed that never leaves reads "never"."""
    trunk = ("wn", "proposed")
    climbs = [(1000 * i, 0.4 if i < 3 else 2.0 + i) for i in range(1, 21)]  # leaves at 3,000; last 10: 13..22
    flat = [(1000 * i, 0.4) for i in range(1, 21)]
    data = RLCurves(curves={trunk: {1: climbs, 2: flat}})
    assert data.left(trunk) == [3000, None]
    assert data.tail(trunk) == [pytest.approx(17.5), pytest.approx(0.4)]
    row = next(line for line in rl_markdown(data).splitlines() if line.startswith("| WN, proposed"))
    assert "3,000, never" in row and "8.95 ± 12.09" in row
