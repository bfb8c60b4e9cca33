"""Experiment specs: one TOML file per paper figure or table -> the list of [`RunConfig`][wninit.suite.train.config.RunConfig] it runs.

The format (documented with examples in `experiments/README.md`)::

    [experiment]            name, title (the figure/table), kind, claims, reproduce, spec (section), description
                            (what the registry reads: wninit.suite.experiments)
    [base]                  RunConfig fields shared by every run
    [grid]                  field -> list of values (cartesian product); a key that is not a field and
                            whose values are tables is a *bundle axis*: each table sets several fields
                            together (e.g. arch + depth + dataset of one Table 1 row)
    [[series]]              optional: name, fixed fields and a [series.grid] of their own, each series
                            expanded separately and the results concatenated (e.g. Table 1's methods)
    [profiles.NAME]         base / grid / series.SERIES_NAME overrides (`enabled = false` drops a series)

Resolution, per series: the file's `base` and `grid`, then the profile's `base` and `grid` (a key
there replaces the same key whether it was fixed or a grid), then the series' fixed fields and grid,
then the profile's override of that series. Every key ends up with a list of values; the runs are the
product of those lists. Anything unknown or out of range is a `UserError` naming the key and the
file (docs/method.md §6: every run of the paper must be describable, and a typo must never silently run the
wrong experiment).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field, fields
from pathlib import Path

from wninit.errors import UserError
from wninit.suite.experiments import toml_loads
from wninit.suite.train.config import RunConfig

__all__ = ["Experiment", "load_spec", "expand", "varying_fields", "PROFILES_REQUIRED"]

TOP_KEYS = ("experiment", "base", "grid", "series", "profiles")
EXPERIMENT_KEYS = ("name", "title", "kind", "claims", "reproduce", "spec", "description")
PROFILE_KEYS = ("base", "grid", "series", "description")
SERIES_META = ("name", "grid", "description", "enabled")
PROFILES_REQUIRED = ("paper", "quick")  # every spec in experiments/ has both
_FIELDS = tuple(f.name for f in fields(RunConfig))


@dataclass
class Experiment:
    """One spec at one profile: its runs (distinct run ids, in expansion order) and what varies."""
    name: str
    profile: str
    path: str
    runs: list[RunConfig]
    title: str = ""
    spec: str = ""
    description: str = ""
    series: dict[str, int] = field(default_factory=dict)  # series name -> runs it expanded to
    ids: list[str] = field(default_factory=list)  # run ids of ``runs``, same order

    @property
    def varies(self) -> dict[str, list]:
        """Fields that take more than one value across the runs, with their values in first-seen order."""
        return varying_fields(self.runs)


def load_spec(path: str | Path, profile: str) -> Experiment:
    """Read the experiment spec at `path` and expand its `profile` to runs.

    Examples:
        >>> exp = load_spec("experiments/fig2_mlp_depth.toml", "quick")
        >>> len(exp.runs), sorted(exp.varies)
    """
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise UserError(f"experiment spec {str(path)!r} does not exist; pass the path of a .toml file "
                        "such as one in experiments/") from None
    except UnicodeDecodeError:
        raise UserError(f"{path} is not a text file, so not a TOML experiment spec; pass the path of a .toml file "
                        "such as one in experiments/") from None
    try:
        doc = toml_loads(text)
    except ValueError as exc:  # TOMLDecodeError, whichever module raised it
        raise UserError(f"{path} is not valid TOML ({str(exc).splitlines()[0]}); fix the file") from None
    return expand(doc, profile, str(path))


def expand(doc: dict, profile: str, where: str = "<spec>") -> Experiment:
    """Expand a parsed spec document (`where` names it in errors) at `profile`."""
    _check_keys(doc, TOP_KEYS, "top-level key", where)
    meta = _table(doc.get("experiment", {}), "[experiment]", where)
    _check_keys(meta, EXPERIMENT_KEYS, "key of [experiment]", where)
    profiles = _table(doc.get("profiles", {}), "[profiles]", where)
    if profile not in profiles:
        names = ", ".join(profiles) or "none"
        raise UserError(f"profile {profile!r} is not in {where}: choose one of {names}")
    prof = _table(profiles[profile], f"[profiles.{profile}]", where)
    _check_keys(prof, PROFILE_KEYS, f"key of [profiles.{profile}]", where)

    top = _layer(doc.get("base", {}), doc.get("grid", {}), "", where)
    top.update(_layer(prof.get("base", {}), prof.get("grid", {}), f"profiles.{profile}.", where))
    series = _series_list(doc.get("series", []), where)
    overrides = _table(prof.get("series", {}), f"[profiles.{profile}.series]", where)
    for name in overrides:
        if name not in [s["name"] for s in series]:
            known = ", ".join(s["name"] for s in series) or "none"
            raise UserError(f"[profiles.{profile}.series.{name}] in {where} names no series: the series are {known}")

    runs, seen, counts, ids = [], set(), {}, []
    for s in series or [{"name": ""}]:
        over = _table(overrides.get(s["name"], {}), f"[profiles.{profile}.series.{s['name']}]", where)
        _check_keys(over, _FIELDS + SERIES_META[1:], f"field of [profiles.{profile}.series.{s['name']}]", where,
                    _FIELDS)
        if not over.get("enabled", s.get("enabled", True)):
            continue
        axes = dict(top)
        axes.update(_series_layer(s, f"series.{s['name']}.", where))
        axes.update(_series_layer(over, f"profiles.{profile}.series.{s['name']}.", where))
        label = f"{where} (profile {profile}" + (f", series {s['name']!r})" if s["name"] else ")")
        cfgs = []
        for cfg in _product(axes, label):
            run_id = cfg.run_id  # a validated copy is hashed: computed once
            if run_id not in seen:
                seen.add(run_id)
                cfgs.append(cfg)
                ids.append(run_id)
        counts[s["name"] or "all"] = len(cfgs)
        runs += cfgs
    if not runs:
        raise UserError(f"profile {profile!r} of {where} expands to no runs; give every grid key at least one value")
    return Experiment(name=str(meta.get("name", Path(where).stem)), profile=profile, path=where, runs=runs,
                      title=str(meta.get("title", "")), spec=str(meta.get("spec", "")),
                      description=str(meta.get("description", "")), series=counts, ids=ids)


def varying_fields(runs: list[RunConfig]) -> dict[str, list]:
    """Field -> distinct values (first-seen order) for the fields that differ between `runs`."""
    values: dict[str, list] = {}
    for cfg in runs:
        for name, v in cfg.to_dict().items():
            seen = values.setdefault(name, [])
            if v not in seen:
                seen.append(v)
    return {k: v for k, v in values.items() if len(v) > 1}


# -- layers ------------------------------------------------------------------------------------------
def _layer(base, grid, prefix: str, where: str) -> dict[str, list]:
    """One (base, grid) pair as key -> list of values; each value is a field or a bundle (dict)."""
    base = _table(base, f"[{prefix}base]", where)
    grid = _table(grid, f"[{prefix}grid]", where)
    out = {}
    for key, value in base.items():
        _check_field(key, f"[{prefix}base]", where)
        out[key] = [value]
    for key, values in grid.items():
        out[key] = _grid_values(key, values, f"[{prefix}grid]", where)
    return out


def _series_layer(s: dict, prefix: str, where: str) -> dict[str, list]:
    fixed = {k: v for k, v in s.items() if k not in SERIES_META}
    return _layer(fixed, s.get("grid", {}), prefix.rstrip(".") + ".", where) if fixed or "grid" in s else {}


def _grid_values(key: str, values, table: str, where: str) -> list:
    if not isinstance(values, list) or not values:
        raise UserError(f"grid key {key!r} of {table} in {where} must be a non-empty list of values, got {values!r}")
    if all(isinstance(v, dict) for v in values):  # a bundle axis: each value sets several fields
        if key in _FIELDS:
            raise UserError(f"grid key {key!r} of {table} in {where} is a RunConfig field, so its values must be "
                            "plain values, not tables; name a bundle axis with a word that is not a field")
        for bundle in values:
            for name in bundle:
                _check_field(name, f"bundle {key!r} of {table}", where)
        return [dict(v) for v in values]
    _check_field(key, table, where)
    return list(values)


def _series_list(series, where: str) -> list[dict]:
    if not isinstance(series, list) or not all(isinstance(s, dict) for s in series):
        raise UserError(f"series in {where} must be an array of tables ([[series]]), got {type(series).__name__}")
    names = []
    for i, s in enumerate(series):
        if not isinstance(s.get("name"), str) or not s["name"]:
            raise UserError(f"[[series]] number {i + 1} in {where} needs a name = \"...\"")
        if s["name"] in names:
            raise UserError(f"series name {s['name']!r} appears twice in {where}; give each series its own name")
        names.append(s["name"])
        _check_keys(s, _FIELDS + SERIES_META, f"field of series {s['name']!r}", where, _FIELDS)
    return series


def _product(axes: dict[str, list], label: str) -> list[RunConfig]:
    keys = list(axes)
    runs = []
    for combo in itertools.product(*(axes[k] for k in keys)):
        values: dict = {}
        for key, v in zip(keys, combo):
            values.update(v if isinstance(v, dict) else {key: v})
        try:
            runs.append(RunConfig(**values))
        except UserError as exc:
            raise UserError(f"{label}: {exc}") from None
        except TypeError as exc:  # a bundle key RunConfig does not take (already checked; defensive)
            raise UserError(f"{label}: {exc}") from None
    return runs


# -- checks ------------------------------------------------------------------------------------------
def _table(value, what: str, where: str) -> dict:
    if not isinstance(value, dict):
        raise UserError(f"{what} in {where} must be a table, got {type(value).__name__}")
    return value


def _check_keys(table: dict, allowed, what: str, where: str, fields_hint=None) -> None:
    for key in table:
        if key not in allowed:
            listed = ", ".join(a for a in allowed if fields_hint is None or a not in fields_hint)
            hint = f"RunConfig fields or {listed}" if fields_hint is not None else listed
            raise UserError(f"unknown {what} {key!r} in {where}: use {hint}")


def _check_field(key: str, table: str, where: str) -> None:
    if key not in _FIELDS:
        raise UserError(f"unknown field {key!r} in {table} of {where}: the RunConfig fields are {', '.join(_FIELDS)}")
