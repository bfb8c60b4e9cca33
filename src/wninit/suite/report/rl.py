"""The RL experiment's report (docs/method.md §7.7, §9 claim 12): return vs environment steps per trunk, mean and
spread over seeds, beside the poster's curves as read, and claim 12 judged on the final returns.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from wninit.suite.experiments import of_kind
from wninit.suite.report.stats import ALPHA, UNDECIDED, decide_family, fmt_p, welch_p
from wninit.suite.report.verdicts import NOT_RUN, Finding, detail, judge, num

__all__ = ["POSTER_CURVES", "RLCurves", "rl_curves", "rl_markdown", "plot_rl", "rl_claim", "TRUNKS"]

# The three trunks of the poster, by (norm, scheme), with its legend's words.
TRUNKS = {("wn", "proposed"): "WN, proposed init", ("wn", "pytorch-default"): "WN, PyTorch default init",
          ("none", "pytorch-default"): "no WN (PyTorch default init)"}
_COLOURS = {("wn", "proposed"): "#1f77b4", ("wn", "pytorch-default"): "#d62728", ("none", "pytorch-default"): "#2ca02c"}
# docs/method.md §7.7: the poster's Pong curves as read, (million steps, return); the plot's own points are not known.
POSTER_CURVES = {("wn", "proposed"): [(0, -21), (2.4, -21), (4, 5), (7, 17)],
                 ("wn", "pytorch-default"): [(0, -21), (7, -21)],
                 ("none", "pytorch-default"): [(0, -21), (3.8, -21), (7, 0)]}


# Descriptive columns beside the claim's statistic (which stays the last chunk's return, as the claim was set
# before any medium run): a return above 1.0, more than twice the random policy's ~0.4 on Breakout, means the
# agent has left its initial return; the last 10 chunks' mean is the run's end without one chunk's noise.
LEFT_ABOVE, TAIL_CHUNKS = 1.0, 10


@dataclass
class RLCurves:
    """Per trunk, one curve per finished seed: `[(env steps, mean return of the last 100 episodes), ...]`."""
    curves: dict = field(default_factory=dict)  # (norm, scheme) -> {seed: [(steps, return), ...]}
    pending: dict = field(default_factory=dict)  # (norm, scheme) -> runs not finished

    def final(self, trunk) -> list[float]:
        """Each seed's return at its last chunk (None where no episode had ended yet is left out)."""
        return [c[-1][1] for c in self.curves.get(trunk, {}).values() if c and c[-1][1] is not None]

    def first(self, trunk) -> list[float]:
        return [c[0][1] for c in self.curves.get(trunk, {}).values() if c and c[0][1] is not None]

    def left(self, trunk, above: float = LEFT_ABOVE) -> list[int | None]:
        """Per seed, the steps after which the return first exceeded `above` (None: never in the run)."""
        return [next((s for s, r in c if r is not None and r > above), None)
                for _, c in sorted(self.curves.get(trunk, {}).items())]

    def tail(self, trunk, chunks: int = TAIL_CHUNKS) -> list[float]:
        """Per seed, the mean return over its last `chunks` chunks: the end of the run, less the noise of one chunk."""
        out = []
        for _, c in sorted(self.curves.get(trunk, {}).items()):
            values = [r for _, r in c[-chunks:] if r is not None]
            if values:
                out.append(sum(values) / len(values))
        return out


def rl_curves(runs) -> RLCurves:
    """The store's runs of the RL experiment (any profile) grouped by trunk."""
    out = RLCurves()
    for run in runs:
        cfg = run.config.to_dict() if hasattr(run.config, "to_dict") else dict(run.config)
        trunk = (cfg["norm"], cfg["scheme"])
        if run.status == "completed" and run.metrics.get("returns"):
            out.curves.setdefault(trunk, {})[cfg["seed"]] = [tuple(p) for p in run.metrics["returns"]]
        else:
            out.pending[trunk] = out.pending.get(trunk, 0) + 1
    return out


def _mean_std(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    mean = sum(values) / len(values)
    sd = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5 if len(values) > 1 else 0.0
    return mean, sd


def rl_markdown(data: RLCurves) -> str:
    """One row per trunk: seeds, steps, first and final return (mean ± std over seeds), the poster's as read."""
    from wninit.suite.report.sections import md_table

    poster = {("wn", "proposed"): "-21 until ~2.4M, ~+17 at 7M", ("wn", "pytorch-default"): "-21 throughout",
              ("none", "pytorch-default"): "-21 until ~3.8M, ~0 at 7M"}
    rows = []
    for trunk, label in TRUNKS.items():
        curves = data.curves.get(trunk, {})
        steps = max((c[-1][0] for c in curves.values()), default=None)
        (m0, s0), (m1, s1) = _mean_std(data.first(trunk)), _mean_std(data.final(trunk))
        mt, st = _mean_std(data.tail(trunk))
        left = ", ".join(f"{s:,}" if s is not None else "never" for s in data.left(trunk)) or "-"
        rows.append([label, len(curves), data.pending.get(trunk, 0), steps if steps is not None else "-",
                     f"{num(m0, 2)} ± {num(s0, 2)}", f"{num(m1, 2)} ± {num(s1, 2)}", f"{num(mt, 2)} ± {num(st, 2)}",
                     left, poster[trunk]])
    return md_table(["trunk", "seeds", "not finished", "env steps", "return, first chunk", "return, last chunk",
                     f"return, last {TAIL_CHUNKS} chunks", f"steps until return > {LEFT_ABOVE:g} (per seed)",
                     "poster (Pong, as read)"], rows)


def plot_rl(data: RLCurves, path: Path, *, title: str, scale: str) -> Path:
    """Left: return vs steps per trunk, the mean over seeds and its min-max band; right: the poster's as read."""
    from wninit.suite.report.plots import _wrap, save, styled, subplots

    @styled
    def draw():
        fig, (ax, ref) = subplots(1, 2, figsize=(11, 4.2))
        for trunk, label in TRUNKS.items():
            curves = list(data.curves.get(trunk, {}).values())
            if not curves:
                continue
            n = min(len(c) for c in curves)
            steps = [curves[0][i][0] for i in range(n)]
            per_step = [[c[i][1] for c in curves if c[i][1] is not None] for i in range(n)]
            keep = [i for i in range(n) if per_step[i]]
            mean = [sum(per_step[i]) / len(per_step[i]) for i in keep]
            xs = [steps[i] for i in keep]
            ax.plot(xs, mean, color=_COLOURS[trunk], lw=2, label=f"{label} ({len(curves)} seeds)")
            ax.fill_between(xs, [min(per_step[i]) for i in keep], [max(per_step[i]) for i in keep],
                            color=_COLOURS[trunk], alpha=0.2, lw=0)
        ax.set_xlabel("environment steps")
        ax.set_ylabel("return (mean of the last 100 episodes)")
        ax.set_title(_wrap(f"wninit, MinAtar Breakout: {scale}", 55))
        ax.legend(loc="upper left")
        for trunk, points in POSTER_CURVES.items():
            ref.plot([p[0] for p in points], [p[1] for p in points], color=_COLOURS[trunk], lw=2, ls="--",
                     label=TRUNKS[trunk])
        ref.set_xlabel("environment steps (millions)")
        ref.set_ylabel("return")
        ref.set_title(_wrap("poster, A3C IMPALA-100 on Pong (as read, docs/method.md §7.7)", 55))
        ref.legend(loc="upper left")
        fig.suptitle(title, y=1.06)
        return save(fig, path)

    return draw()


def rl_claim(data: RLCurves | None = None, scale: str = "-") -> Finding:
    """Claim 12 (docs/method.md §9.12). Criterion at any scale: the WN trunk with the proposed init ends with a
    higher return than the WN trunk with PyTorch's default (the poster: +17 against -21), and it learns: its
    last-chunk return is above its first-chunk return. Each: Welch one-sided t-test over seeds, p < 0.05."""
    prop, default = ("wn", "proposed"), ("wn", "pytorch-default")
    if data is None or not data.curves.get(prop) or not data.curves.get(default):
        name = of_kind("rl").name
        return Finding(NOT_RUN, scale, f"needs finished {name} runs of WN + proposed and WN + PyTorch default "
                                       f"(`wninit sweep experiments/{name}.toml --profile quick`)")
    texts, tests = [], []
    for better, worse, what in ((data.final(prop), data.final(default), "final return: proposed vs PyTorch default"),
                                (data.final(prop), data.first(prop), "proposed: last chunk vs first chunk")):
        p_for, p_against = welch_p(better, worse, "greater"), welch_p(better, worse, "less")
        mb, mw = _mean_std(better)[0], _mean_std(worse)[0]
        texts.append(f"{what} {num(mb, 2)} vs {num(mw, 2)} ({fmt_p(p_for)}, {len(better)} vs {len(worse)} seeds)")
        tests.append((p_for, p_against))
    parts = [(text, UNDECIDED if ok is None else ok) for text, ok in zip(texts, decide_family(tests))]
    if any(data.pending.get(t) for t in (prop, default)):
        parts = [(text, None if ok is not False else ok) for text, ok in parts]
    return Finding(judge(parts), scale, detail(parts), f"Welch one-sided t-test over seeds, level {ALPHA}")
