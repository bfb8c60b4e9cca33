"""What `--portable` means to the commands that run experiment specs (`wninit sweep`, `wninit reproduce`), as it
means to `wninit train` and `wninit rerun`: every run with `RunConfig.portable` set, trained in a process whose
kernels are pinned to one instruction set (train/portable.py, docs/reproducibility.md).

A portable run is another run id than its native twin (the pin changes results), so the store can hold both; one
experiment and profile of a store holds one kind only, or its report would count each configuration twice, made
by two sets of kernels.
"""
from __future__ import annotations

import dataclasses

from wninit.errors import UserError

__all__ = ["pinned", "needs_pin", "refuse_mixed"]


def pinned(exps: list, portable: bool) -> list:
    """The experiments (sweep/spec.py's `Experiment`) with `portable` set on every run when `portable`, else as
    they are."""
    if not portable:
        return list(exps)
    out = []
    for exp in exps:
        runs = [cfg.replace(portable=True) for cfg in exp.runs]
        out.append(dataclasses.replace(exp, runs=runs, ids=[cfg.run_id for cfg in runs]))
    return out


def needs_pin(exps: list) -> bool:
    """Whether the experiments' runs need a pinned process: True when every run is portable, False when none is.
    A process is pinned or not, for all its runs: a mix is one sentence."""
    kinds = {cfg.portable for exp in exps for cfg in exp.runs}
    if len(kinds) > 1:
        mixed = sorted({exp.name for exp in exps if any(cfg.portable for cfg in exp.runs)})
        raise UserError(f"some runs of {', '.join(mixed)} are portable and some are not, and one process runs them "
                        "all pinned or all native: pass --portable to pin every run, or run them in two commands")
    return kinds == {True}


def refuse_mixed(store, store_path, exps: list, hint: str) -> None:
    """One sentence when the store already holds runs of one of the experiments (at its profile) of the other
    kind than its runs now; `hint` says what to pass instead ("--out (or --store)")."""
    for exp in exps:
        mine = {cfg.portable for cfg in exp.runs}
        if any(r.config.portable not in mine for r in store.runs(exp.name, exp.profile)):
            mode = "portable" if mine == {True} else "native"
            raise UserError(f"{store_path} already holds {exp.name} runs that are not {mode}; pass another {hint} "
                            "so that one report does not mix pinned and native kernels")
