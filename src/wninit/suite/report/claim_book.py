"""The paper's claims (docs/method.md §9, items 1-12), each defined once: its number, its name and the function that
judges it; the experiment it is judged on is the one whose spec lists it in `claims` (wninit.suite.experiments). The
report, the terminal table and docs/claims.md read them here.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from wninit.suite.experiments import judged_on
from wninit.suite.report import claims as C
from wninit.suite.report import tables
from wninit.suite.report.rl import rl_claim, rl_curves
from wninit.suite.report.scope import final_losses
from wninit.suite.train.result import FINISHED, WAITING
from wninit.suite.report.verdicts import NOT_RUN, Claim, Finding

__all__ = ["Evidence", "ClaimSpec", "CLAIMS", "claim_spec", "judge_all", "scale_of"]


@dataclass(frozen=True)
class Evidence:
    """What a claim is judged on: its experiment's runs at one profile (with the scale they were run at, their
    dataset and each finished run's final training loss), or Figure 1's rows."""
    runs: list = field(default_factory=list)
    scale: str = "-"
    dataset: str = "cifar10"
    final_loss: dict = field(default_factory=dict)
    figure1_rows: list | None = None


@dataclass(frozen=True)
class ClaimSpec:
    number: int
    name: str
    judge: Callable[[Evidence], Finding]

    @property
    def experiment(self) -> str | None:
        """The experiment whose spec lists this claim (experiments/NAME.toml); None: judged without a store."""
        return judged_on(self.number)

    def claim(self, finding: Finding) -> Claim:
        return Claim(self.number, self.name, finding.verdict, finding.scale, finding.detail, finding.test)


def _figure1(i: int):
    return lambda ev: C.figure1_claims(ev.figure1_rows)[i]


def _depth(trains_abs, shallow_abs, datadep_fails_from=None):
    # claim 5 (MLP on MNIST): 0.80 at the deepest depth and 0.85 at the shallowest, the paper's 0.96 and 0.98
    # adapted to the quick scale; claim 6 (CNN): relative thresholds, and data-dependent init fails in the
    # paper at depth 100 only (it trains at 25, docs/method.md §7.2) (claims.depth_claim)
    return lambda ev: C.depth_claim(tables.depth_sweep(ev.runs), ev.scale, ev.dataset, trains_abs=trains_abs,
                                    shallow_abs=shallow_abs, final_loss=ev.final_loss,
                                    datadep_fails_from=datadep_fails_from)


CLAIMS = (
    ClaimSpec(1, "Fig. 1 feed-forward forward", _figure1(0)),
    ClaimSpec(2, "Fig. 1 feed-forward backward", _figure1(1)),
    ClaimSpec(3, "Fig. 1 ResNet", _figure1(2)),
    ClaimSpec(4, "gain formula g = sqrt(gamma*fan_in/fan_out)", lambda ev: C.gain_claim()),
    ClaimSpec(5, "Fig. 2 MLP depth", _depth(0.8, 0.85)),
    ClaimSpec(6, "Fig. 2 CNN depth", _depth(None, None, datadep_fails_from=100)),
    ClaimSpec(7, "Fig. 2 hyper-parameter robustness", lambda ev: C.hparams_claim(tables.hparam_curves(ev.runs), ev.scale)),
    ClaimSpec(8, "Fig. 3-left: 10k-layer WRN",
              lambda ev: C.depth_10k_claim(tables.depth_sweep(ev.runs), ev.scale, ev.dataset)),
    ClaimSpec(9, "Fig. 3-right: LR robustness and warmup", lambda ev: C.survival_claim(tables.survival(ev.runs), ev.scale)),
    ClaimSpec(10, "Table 1: WN + proposed (+ warmup) vs datadep and BN",
              lambda ev: C.table1_claim(tables.wn_vs_bn(ev.runs), ev.scale, ev.final_loss)),
    ClaimSpec(11, "Table 2: smallest Hessian norm at init",
              lambda ev: C.table2_claim(tables.hessian_table(ev.runs), ev.scale)),
    ClaimSpec(12, "RL (poster only): the deep WN IMPALA trunk learns with the proposed init, not with PyTorch's default",
              lambda ev: rl_claim(rl_curves(ev.runs), ev.scale)),
)


def claim_spec(number: int) -> ClaimSpec:
    return next(c for c in CLAIMS if c.number == number)


def scale_of(profile: str, runs) -> str:
    """What was run, in one line: "quick profile: mnist5k, MLP, depths 2-50, 2 seeds, 10 epochs, 120 runs"."""
    cfgs = [tables.config_dict(r) for r in runs]
    datasets = sorted({c["dataset"] for c in cfgs})
    archs = sorted({tables.arch_label(c) if c["arch"] in ("resnet", "wrn") else c["arch"].upper() for c in cfgs})
    depths = sorted({c["depth"] for c in cfgs})
    seeds = len({c["seed"] for c in cfgs})
    epochs = sorted({c["epochs"] for c in cfgs if c.get("task", "train") == "train"})
    parts = [f"{profile} profile: {', '.join(datasets)}", ", ".join(archs)]
    if len(depths) > 1 and not any(c["arch"] in ("resnet", "wrn") for c in cfgs):
        parts.append(f"depths {'/'.join(map(str, depths))}")
    parts.append(f"{seeds} seed{'s' * (seeds > 1)}")
    if epochs:
        parts.append(f"{'/'.join(map(str, epochs))} epoch{'s' * (epochs != [1])}")
    parts.append(f"{len(runs)} runs")
    return ", ".join(parts)


def _profiles(store, experiment: str, profile: str | None) -> list[str]:
    """The profiles a claim is judged at: `profile` alone when given, else every profile of the experiment in
    the store that has finished runs (paper first, then medium, then quick), or the first one run."""
    found = [p for e, p in store.experiments() if e == experiment]
    if profile is not None:
        return [profile] if profile in found else []
    order = {"paper": 0, "medium": 1, "quick": 2}
    done = [p for p in found if any(r.status in FINISHED for r in store.runs(experiment, p))]
    return sorted(done, key=lambda p: (order.get(p, 3), p)) or found[:1]


def _evidence(store, experiment: str, profile: str) -> Evidence:
    runs = store.runs(experiment, profile)
    dataset = tables.config_dict(runs[0])["dataset"] if runs else "cifar10"
    return Evidence(runs, scale_of(profile, runs), dataset, final_losses(store, runs))


def _incomplete(spec: ClaimSpec, ev: Evidence, profile: str) -> Finding | None:
    """"not run" while some of the experiment's runs wait to run: a verdict on part of a grid or part of the
    seeds could turn once the rest finish, either way. What the finished runs would say so far is named, not
    given as the verdict. None when no run waits."""
    waiting = sum(1 for r in ev.runs if r.status in WAITING)
    if not waiting:
        return None
    n, done = len(ev.runs), sum(1 for r in ev.runs if r.status in FINISHED)
    failed = n - done - waiting
    so_far = f" (so far: {spec.judge(ev).verdict})" if done else ""
    return Finding(NOT_RUN, ev.scale, f"incomplete: {done} of {n} runs of {spec.experiment} ({profile}) finished, "
                                      f"{waiting} not run yet{f', {failed} failed' if failed else ''}; judged once "
                                      f"every run has finished{so_far}")


def judge_all(store, figure1_rows=None, profile: str | None = None) -> list[Claim]:
    """Every claim of docs/method.md §9 on this store (and Figure 1's rows when given): one row per claim and profile
    judged, so a quick and a medium verdict stand side by side; `profile` keeps one."""
    out = []
    for spec in CLAIMS:
        experiment = spec.experiment
        if experiment is None:
            out.append(spec.claim(spec.judge(Evidence(figure1_rows=figure1_rows))))
            continue
        profiles = _profiles(store, experiment, profile)
        for p in profiles:
            ev = _evidence(store, experiment, p)
            if any(r.status in FINISHED for r in ev.runs):
                out.append(spec.claim(_incomplete(spec, ev, p) or spec.judge(ev)))
            else:
                out.append(spec.claim(Finding(NOT_RUN, ev.scale, f"{experiment} ({p}) has no finished runs")))
        if not profiles:
            out.append(spec.claim(Finding(NOT_RUN, "-", f"not in this store (`wninit sweep experiments/{experiment}"
                                                        ".toml --profile quick --store FILE.db` runs it)")))
    return out
