"""Claims 1-3 (docs/method.md §9): Figure 1's norm ratios on synthetic data, judged over network draws.

The claims are about the expected curve, not one network's: one draw's curve is a random walk over the layers
(each layer's factor, shared by all inputs, moves by about 2% at width 1000), and the paper's figure is one draw.
Each point (panel, init, width, layer or block) is judged on the mean over the k draws of that draw's mean over
its inputs, with its 95% t interval over the draws, `mean ± t(0.975, k-1) sd/sqrt(k)` (sd: the sample std of
the k draw means; it holds the spread between networks and the sampling of the inputs both). A criterion on a
point is met when the whole interval meets it, missed when none of it does, undecided otherwise; the tolerance
of each criterion is the band written with it below. One draw has no interval over draws: every criterion
is undecided.
"""
from __future__ import annotations

import math
import statistics

from wninit.suite.report.stats import ALPHA, UNDECIDED
from wninit.suite.report.verdicts import NOT_RUN, Finding, detail, judge, num

__all__ = ["judge_figure1"]

_INF = math.inf


def _check(points, lo: float = -_INF, hi: float = _INF):
    """Every (mean, half-width) in [lo, hi]: True when each interval is inside, False when one lies wholly
    outside, else UNDECIDED."""
    if all(lo <= m - h and m + h <= hi for m, h in points):
        return True
    if any(m + h < lo or m - h > hi for m, h in points):
        return False
    return UNDECIDED


def _all(*outcomes):
    if any(o is False for o in outcomes):
        return False
    return UNDECIDED if any(o == UNDECIDED for o in outcomes) else True


def _over_draws(rows) -> tuple[dict, int]:
    """{(panel, init, width, index): (mean over draws, half-width of its 95% t interval)} and the number of draws
    (the fewest any point has); the half-width is infinite with one draw."""
    from scipy import stats

    by_point: dict = {}
    for r in rows:
        by_point.setdefault((r.panel, r.init, int(r.width), int(r.index)), []).append(float(r.mean))
    k = min(len(v) for v in by_point.values())
    t = stats.t.ppf(1 - ALPHA / 2, k - 1) if k > 1 else _INF
    return {key: (statistics.fmean(v), t * statistics.stdev(v) / math.sqrt(len(v)) if len(v) > 1 else _INF)
            for key, v in by_point.items()}, k


def judge_figure1(rows) -> list[Finding]:
    """Claims 1-3, in order, from [`wninit.diagnostics.synthetic.figure1`][] rows of one or more network draws."""
    if not rows:
        return [Finding(NOT_RUN, "Figure 1 (synthetic) not in this report", "run `wninit reproduce` or `wninit figure1`")] * 3
    half, draws = _over_draws(rows)
    widths = sorted({int(r.width) for r in rows})
    layers = len({r.index for r in rows if r.panel == "ff_forward"})
    blocks = len({r.index for r in rows if r.panel == "resnet_forward"})
    scale = (f"synthetic, widths {'/'.join(map(str, widths))}, {layers} layers / {blocks} blocks, "
             f"{draws} network draw{'s' * (draws > 1)}")
    widest = max((h for (_, init, _, _), (_, h) in half.items() if init.startswith("Proposed")), default=0.0)
    test = (f"95% t interval over the {draws} network draws of each plotted point (mean of the draws' means over "
            f"their inputs ± t(0.975, {draws - 1}) sd/sqrt({draws})): met when inside the criterion's band, missed "
            f"when wholly outside; proposed points' half-widths <= {widest:.3g}" if draws > 1 else
            "one network draw: no interval over draws, every criterion undecided (`wninit reproduce` draws 8)")
    judged = (_forward_parts(half, widths), _backward_parts(half, widths), _resnet_parts(half, widths))
    return [Finding(judge(parts), scale, detail(parts), test) for parts in judged]


_PROPOSED = ("Proposed (orthogonal)", "Proposed (He)")


def _curve(half, panel: str, init: str, width: int) -> list[tuple[float, float]]:
    """(mean, half-width) of one plotted curve, by layer or block index."""
    return [v for (p, i, w, _), v in sorted(half.items(), key=lambda kv: kv[0][3]) if (p, i, w) == (panel, init, width)]


def _range(c) -> str:
    return f"range [{num(min(m for m, _ in c))}, {num(max(m for m, _ in c))}]"


def _forward_parts(half, widths):
    """Claim 1: proposed forward ratios in [0.85, 1.15] at every layer at the widest width; He (g=1)
    <= 0.05 by layer 10, ~0 (< 0.01) at layer 20 there, and ~0.44 (±0.05) at layer 1 at width 200."""
    wide, narrow = widths[-1], widths[0]
    parts = []
    for init in _PROPOSED:
        c = _curve(half, "ff_forward", init, wide)
        parts.append((f"{init} w{wide}: {_range(c)}", _check(c, 0.85, 1.15)))
    he = _curve(half, "ff_forward", "He (g=1)", wide)
    parts.append((f"He (g=1) w{wide}: {num(he[9][0])} at layer 10, {num(he[-1][0])} at layer {len(he)}",
                  _all(_check([he[9]], hi=0.05), _check([he[-1]], hi=0.01))))
    if narrow == 200:
        h1 = _curve(half, "ff_forward", "He (g=1)", 200)[0]
        parts.append((f"He (g=1) w200 layer 1: {num(h1[0])}", _check([h1], 0.39, 0.49)))
    return parts


def _backward_parts(half, widths):
    """Claim 2: proposed backward ratios in [0.85, 1.15] at the widest width and [0.6, 1.4] at width 200;
    He (g=1) ~0.707^(L-i): 0.71 ± 0.05 at the top plotted layer, <= 0.01 at layers <= 5."""
    wide, narrow = widths[-1], widths[0]
    parts = []
    for init in _PROPOSED:
        for width, lo, hi in ((wide, 0.85, 1.15), (narrow, 0.6, 1.4)) if narrow != wide else ((wide, 0.85, 1.15),):
            c = _curve(half, "ff_backward", init, width)
            parts.append((f"{init} w{width}: {_range(c)}", _check(c, lo, hi)))
    back = {i: v for (p, n, w, i), v in half.items() if (p, n, w) == ("ff_backward", "He (g=1)", wide)}
    top, low = back[max(back)], [v for i, v in back.items() if i <= 5]
    parts.append((f"He (g=1) w{wide}: {num(top[0])} at layer {max(back)}, max {num(max(m for m, _ in low))} at layers <= 5",
                  _all(_check([top], 0.657, 0.757), _check(low, hi=0.01))))
    return parts


def _resnet_parts(half, widths):
    """Claim 3: ResNet proposed forward ratio grows monotonically (0.001 slack for sampling noise) to
    1.64 ± 0.1 at the last block, at every width; backward ~1.6 ± 0.1 at b = 2; He (g=1) > 4 by b = 7
    and ~1e3 (in [300, 1e4]) at the last block."""
    parts = []
    for init in _PROPOSED:
        for width in widths:
            c = _curve(half, "resnet_forward", init, width)
            mono = all(b >= a - 1e-3 for (a, _), (b, _) in zip(c, c[1:]))
            b2 = half[("resnet_backward", init, width, 2)]
            parts.append((f"{init} w{width}: forward {num(c[-1][0])} at b={len(c)}{'' if mono else ' (not monotone)'}, "
                          f"backward {num(b2[0])} at b=2",
                          _all(mono, _check([c[-1]], 1.54, 1.74), _check([b2], 1.5, 1.7))))
    he = _curve(half, "resnet_forward", "He (g=1)", widths[-1])
    parts.append((f"He (g=1) w{widths[-1]}: {num(he[6][0])} at b=7, {he[-1][0]:.0f} at b={len(he)}",
                  _all(_check([he[6]], lo=4.0), _check([he[-1]], 300.0, 1e4))))
    return parts
