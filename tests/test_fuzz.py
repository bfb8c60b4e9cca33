"""Fuzzing ("Config and CLI fuzzing"): hypothesis generates >= 1,000 cases per target.

- RunConfig: every field with values of the right and wrong types and ranges, and the cross-field rules;
  an invalid config raises one line of UserError naming the field, a valid one round-trips through JSON
  to an equal config with the same run id.
- TOML experiment specs: unknown keys, out-of-range grid values, unknown profiles, wrong types, malformed
  TOML; each is one sentence naming the key and the file, valid specs load.
- CLI arguments: ``train`` with bad numbers, choices, flags and missing values; ``sweep --dry-run``,
  ``report`` and ``export`` with bad paths: exit 2, one stderr line "wninit: error: ...", no traceback.
  No case trains (``fit`` is replaced by a tripwire).

Each target counts its cases and asserts the count; ``pytest -s`` prints them (the README quotes them).
"""
import json
import math
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wninit.errors import UserError
from wninit.init.schemes import PLAIN_SCHEMES, WN_SCHEMES
from wninit.models import DEPTH_EXTRA
from wninit.suite.sweep.spec import load_spec
from wninit.suite.train.config import ARCHS, DEVICES, NORMS, TASKS, RunConfig

from fuzz_common import DATASETS, ONE_SENTENCE, SETTINGS, _report


# -- RunConfig ----------------------------------------------------------------------------------------
finite = st.floats(allow_nan=False, allow_infinity=False)
pos_int = st.integers(min_value=1, max_value=10**6)
non_neg_float = st.one_of(st.floats(min_value=0, max_value=1e6), st.integers(0, 100))


unit = st.floats(min_value=0, max_value=1, exclude_max=True)
# strategies built once (building them per draw costs more than the case itself)
FIELD_VALUES = {
    "dataset": st.sampled_from(DATASETS), "width": pos_int, "k": pos_int,
    "direction": st.sampled_from(("orthogonal", "gaussian", "he")),
    "stem_gamma": st.one_of(st.none(), st.floats(min_value=1e-300, max_value=1e300)),
    "lr": st.one_of(st.floats(min_value=5e-324, max_value=1e6), st.integers(1, 10)), "momentum": unit,
    "weight_decay": non_neg_float, "wd_exempt_gain_bias": st.booleans(), "schedule": st.integers(0, 5),
    "warmup_lr": non_neg_float, "cutout": st.integers(0, 64), "crop": st.sampled_from((None, True, False)),
    "flip": st.sampled_from((None, True, False)), "val_fraction": unit, "seed": st.integers(0, 2**63),
    # task "rl" needs a game, the IMPALA trunk and env_steps together (tests/test_rl.py checks those rules)
    "task": st.sampled_from(tuple(t for t in TASKS if t != "rl")), "hessian_iters": pos_int,
    "hessian_batches": st.one_of(st.floats(min_value=1e-9, max_value=1.0), st.integers(1, 1000)),
    "device": st.sampled_from(DEVICES), "threads": st.one_of(st.none(), st.integers(1, 256)),
    "data_root": st.one_of(st.none(), st.text(max_size=20)), "download": st.booleans(),
}
TIED = {  # fields whose valid values depend on each other: drawn together
    "arch+depth": st.tuples(st.sampled_from(ARCHS), st.integers(1, 300)).map(
        lambda t: dict(arch=t[0], depth=t[1] if t[0] in ("mlp", "cnn") else 6 * t[1] + DEPTH_EXTRA[t[0]])),
    "norm+scheme": st.one_of(st.builds(lambda s: dict(norm="wn", scheme=s), st.sampled_from(WN_SCHEMES)),
                             st.builds(lambda n, s: dict(norm=n, scheme=s), st.sampled_from(("bn", "none")),
                                       st.sampled_from(PLAIN_SCHEMES))),
    "batch": st.builds(lambda m, n, split: dict(batch_size=m * n, mini_batch_size=m if split else None),
                       st.integers(1, 64), st.integers(1, 64), st.booleans()),
    "epochs+warmup": st.builds(lambda e, f, on: dict(epochs=e, warmup_epochs=f * e if on and f * e < e else 0.0),
                               st.integers(1, 1000), unit, st.booleans()),
}
subset = st.sets(st.sampled_from(sorted(FIELD_VALUES) + sorted(TIED)), max_size=10)


@st.composite
def valid_configs(draw) -> dict:
    """Keyword arguments of a valid RunConfig: a subset of the fields, each from its allowed set (the rest
    keep their defaults), with the cross-field rules kept."""
    kw = {}
    for name in draw(subset):
        if name in TIED:
            kw.update(draw(TIED[name]))
        else:
            kw[name] = draw(FIELD_VALUES[name])
    return kw


junk = st.one_of(st.none(), st.booleans(), st.text(alphabet="abcxyz_-", max_size=6), st.lists(st.integers(), max_size=2),
                 st.floats(allow_nan=True, allow_infinity=True), st.integers(-5, 5))


def _bad(allowed) -> st.SearchStrategy:
    """Values outside ``allowed`` (a predicate): junk of any type, filtered."""
    return junk.filter(lambda v: not allowed(v))


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _real(v):
    return (_is_int(v) or isinstance(v, float)) and not isinstance(v, bool) and math.isfinite(v)


BAD_FIELDS = {
    "dataset": _bad(lambda v: isinstance(v, str) and v in DATASETS),
    "arch": _bad(lambda v: isinstance(v, str) and v in ARCHS),
    "norm": _bad(lambda v: isinstance(v, str) and v in NORMS),
    "task": _bad(lambda v: isinstance(v, str) and v in TASKS),
    "device": _bad(lambda v: isinstance(v, str) and v in DEVICES),
    "scheme": _bad(lambda v: isinstance(v, str) and v in WN_SCHEMES + PLAIN_SCHEMES),
    "direction": _bad(lambda v: v in ("orthogonal", "gaussian", "he")),
    "depth": st.one_of(st.integers(max_value=0), _bad(_is_int), st.just(2.0)),
    "width": st.one_of(st.integers(max_value=0), _bad(_is_int)),
    "k": st.one_of(st.integers(max_value=0), _bad(_is_int)),
    "batch_size": st.one_of(st.integers(max_value=0), _bad(_is_int), st.just(128.0)),
    "epochs": st.one_of(st.integers(max_value=0), _bad(_is_int)),
    "hessian_iters": st.one_of(st.integers(max_value=0), _bad(_is_int)),
    "seed": st.one_of(st.integers(max_value=-1), _bad(_is_int), st.just(1.0)),
    "cutout": st.one_of(st.integers(max_value=-1), _bad(_is_int)),
    "stem_gamma": st.one_of(st.floats(max_value=0), _bad(lambda v: v is None or _real(v))),
    "lr": st.one_of(st.floats(max_value=0), st.integers(max_value=0), _bad(_real)),
    "momentum": st.one_of(st.floats(min_value=1), st.floats(max_value=0, exclude_max=True), _bad(_real)),
    "weight_decay": st.one_of(st.floats(max_value=0, exclude_max=True), _bad(_real)),
    "warmup_epochs": st.one_of(st.floats(max_value=0, exclude_max=True), _bad(_real)),
    "warmup_lr": st.one_of(st.floats(max_value=0, exclude_max=True), st.integers(max_value=-1), _bad(_real)),
    "val_fraction": st.one_of(st.floats(min_value=1), st.floats(max_value=0, exclude_max=True), _bad(_real)),
    "schedule": st.one_of(st.integers().filter(lambda v: not 0 <= v <= 5), _bad(_is_int), st.just(1.0)),
    "mini_batch_size": st.one_of(st.integers(max_value=0), _bad(lambda v: v is None or _is_int(v))),
    "threads": st.one_of(st.integers(max_value=0), _bad(lambda v: v is None or _is_int(v))),
    "crop": _bad(lambda v: v is None or isinstance(v, bool)),
    "flip": _bad(lambda v: v is None or isinstance(v, bool)),
    "wd_exempt_gain_bias": _bad(lambda v: isinstance(v, bool)),
    "download": _bad(lambda v: isinstance(v, bool)),
    "reduced_memory": _bad(lambda v: isinstance(v, bool)),
    "bn_reference": _bad(lambda v: isinstance(v, bool)),
    "hessian_batches": st.one_of(st.integers(max_value=0), st.floats(min_value=1, exclude_min=True),
                                 st.floats(max_value=0),
                                 _bad(lambda v: _is_int(v) or isinstance(v, float) and 0 < v <= 1)),
    "data_root": _bad(lambda v: v is None or isinstance(v, str)),
}
# cross-field rules: (kwargs strategy, words the message must contain)
BAD_COMBOS = [
    (st.builds(lambda s: dict(norm="wn", scheme=s), st.sampled_from(PLAIN_SCHEMES)), "norm"),
    (st.builds(lambda n, s: dict(norm=n, scheme=s), st.sampled_from(("bn", "none")), st.sampled_from(WN_SCHEMES)),
     "norm"),
    (st.builds(lambda b, m: dict(batch_size=b, mini_batch_size=m), st.integers(1, 512), st.integers(1, 1024))
     .filter(lambda d: d["mini_batch_size"] > d["batch_size"] or d["batch_size"] % d["mini_batch_size"]),
     "mini_batch_size"),
    (st.builds(lambda e, w: dict(epochs=e, warmup_epochs=e + w), st.integers(1, 100), st.floats(0, 1e3)),
     "warmup_epochs"),
    (st.builds(lambda a, d: dict(arch=a, depth=d), st.sampled_from(("resnet", "wrn")), st.integers(1, 2000))
     .filter(lambda d: d["depth"] < {"resnet": 8, "wrn": 10}[d["arch"]] or (d["depth"] - {"resnet": 2, "wrn": 4}[d["arch"]]) % 6),
     "depth"),
]

config_cases = st.one_of(
    st.tuples(st.just("valid"), valid_configs()),
    st.tuples(st.just("bad field"), st.sampled_from(sorted(BAD_FIELDS)).flatmap(
        lambda name: st.tuples(st.just(name), BAD_FIELDS[name], valid_configs()))),
    st.tuples(st.just("bad combination"), st.sampled_from(range(len(BAD_COMBOS))).flatmap(
        lambda i: st.tuples(BAD_COMBOS[i][0], st.just(BAD_COMBOS[i][1])))),
    st.tuples(st.just("bad JSON"), st.one_of(
        st.text(max_size=30),
        st.dictionaries(st.sampled_from(["lr", "depth", "seed", "lrr", "epochs", "nope"]), junk, max_size=3)
        .map(json.dumps))),
)


def _assert_one_line(exc: BaseException, *names: str) -> str:
    msg = str(exc)
    assert "\n" not in msg and msg.strip(), msg
    for name in names:
        assert name in msg, (name, msg)
    return msg


def test_run_config_fuzz():
    counts: dict[str, int] = {}

    @SETTINGS
    @given(config_cases)
    def case(c):
        kind = c[0]
        counts[kind] = counts.get(kind, 0) + 1
        if kind == "valid":
            cfg = RunConfig(**c[1])
            back = RunConfig.from_json(cfg.to_json())
            assert back == cfg and back.run_id == cfg.run_id and back.to_json() == cfg.to_json()
        elif kind == "bad field":
            name, value, others = c[1]
            others = {k: v for k, v in others.items() if k != name}
            with pytest.raises(UserError) as err:
                RunConfig(**others, **{name: value})
            msg = _assert_one_line(err.value, f"RunConfig.{name}")
            assert not ONE_SENTENCE.search(msg.split(", got ")[0]), msg
            # the same value through JSON (when JSON can carry it) fails the same way
            try:
                text = json.dumps({name: value}, allow_nan=True)
            except (TypeError, ValueError):
                return
            with pytest.raises(UserError) as err:
                RunConfig.from_json(text)
            _assert_one_line(err.value, name)
        elif kind == "bad combination":
            kw, words = c[1]
            with pytest.raises(UserError) as err:
                RunConfig(**kw)
            _assert_one_line(err.value, words)
        else:  # arbitrary JSON text: a valid config or one line of UserError, never another exception
            try:
                cfg = RunConfig.from_json(c[1])
            except UserError as exc:
                _assert_one_line(exc)
            else:
                assert RunConfig.from_json(cfg.to_json()).run_id == cfg.run_id

    case()
    _report("RunConfig", counts)


# -- TOML experiment specs ----------------------------------------------------------------------------
def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v) if not isinstance(v, float) or math.isfinite(v) else ("nan" if v != v else ("inf" if v > 0 else "-inf"))
    if isinstance(v, str):
        return json.dumps(v)  # ASCII-only strings below: JSON's escapes are TOML's
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(v)


def _toml(doc: dict) -> str:
    """A small TOML writer for the documents below: tables of scalars, lists, and inline tables."""
    lines = []

    def table(prefix, d):
        scalars = {k: v for k, v in d.items() if not isinstance(v, dict)}
        subs = {k: v for k, v in d.items() if isinstance(v, dict)}
        if prefix and (scalars or not subs):
            lines.append(f"[{prefix}]")
        lines.extend(f"{k} = {_toml_value(v)}" for k, v in scalars.items())
        for k, v in subs.items():
            table(f"{prefix}.{k}" if prefix else k, v)

    table("", doc)
    return "\n".join(lines) + "\n"


key_names = st.text(alphabet=string.ascii_lowercase + "_", min_size=1, max_size=10)
SMALL_VALID = {  # field -> values that run on any config of BASE
    "seed": st.integers(0, 50), "lr": st.floats(1e-5, 1.0), "momentum": st.floats(0, 0.99),
    "width": st.integers(1, 64), "epochs": st.integers(1, 5), "weight_decay": st.floats(0, 1e-2),
    "direction": st.sampled_from(("orthogonal", "gaussian")), "scheme": st.sampled_from(WN_SCHEMES),
}
SMALL_BAD = {  # field -> out of range or wrong type for that field
    "seed": st.one_of(st.integers(max_value=-1), st.just("one")), "lr": st.one_of(st.floats(max_value=0), st.just("x")),
    "momentum": st.floats(min_value=1, max_value=1e9), "width": st.integers(-100, 0), "epochs": st.just(0),
    "weight_decay": st.floats(max_value=-1e-9, min_value=-1e9), "direction": st.just("uniform"),
    "scheme": st.just("he"), "depth": st.one_of(st.integers(-5, 0), st.just(2.5)),
}
BASE = {"dataset": "digits", "arch": "mlp", "depth": 2, "width": 8, "epochs": 1}


GRID_SHAPE = st.dictionaries(st.sampled_from(sorted(SMALL_VALID)), st.integers(1, 2), max_size=3)
GRID_LISTS = {k: {n: st.lists(v, min_size=n, max_size=n, unique=True) for n in (1, 2)} for k, v in SMALL_VALID.items()}


@st.composite
def valid_specs(draw):
    grid = {k: draw(GRID_LISTS[k][n]) for k, n in draw(GRID_SHAPE).items()}
    profile = draw(key_names)
    doc = {"experiment": {"name": draw(key_names)}, "base": dict(BASE), "grid": grid,
           "profiles": {profile: {}, **({"paper": {}} if draw(st.booleans()) else {})}}
    runs = math.prod(len(v) for v in grid.values())
    return doc, profile, runs


@st.composite
def bad_specs(draw):
    """(document or raw text, profile, the key the message must name)."""
    doc, profile, _ = draw(valid_specs())
    kind = draw(st.sampled_from(["top", "base key", "grid value", "base value", "profile", "grid type",
                                 "table type", "profile key", "series", "malformed"]))
    if kind == "top":
        key = draw(key_names.filter(lambda k: k not in ("experiment", "base", "grid", "series", "profiles")))
        doc[key] = {"x": 1}
    elif kind == "base key":
        key = draw(key_names.filter(lambda k: k not in RunConfig.__dataclass_fields__))
        doc["base"][key] = 1
    elif kind == "grid value":
        key = draw(st.sampled_from(sorted(SMALL_BAD)))
        doc["grid"][key] = [draw(SMALL_VALID.get(key, st.just(2))), draw(SMALL_BAD[key])]
        key = f"RunConfig.{key}" if key != "scheme" else "scheme 'he'"  # a plain scheme on a WN net
    elif kind == "base value":
        key = draw(st.sampled_from(sorted(SMALL_BAD)))
        doc["base"][key] = draw(SMALL_BAD[key])
        doc["grid"].pop(key, None)  # a grid key would replace the base value
        key = f"RunConfig.{key}" if key != "scheme" else "scheme 'he'"
    elif kind == "profile":
        key = draw(key_names.filter(lambda k: k not in doc["profiles"]))
        profile, key = key, f"profile {key!r}"
    elif kind == "grid type":
        key = draw(st.sampled_from(sorted(SMALL_VALID)))
        doc["grid"][key] = draw(st.one_of(SMALL_VALID[key], st.just([])))
        key = f"grid key {key!r}"
    elif kind == "table type":
        key = draw(st.sampled_from(["base", "grid", "experiment", "profiles"]))
        doc[key] = draw(st.one_of(st.integers(), st.text(alphabet="abc", max_size=3), st.lists(st.integers(), max_size=2)))
        if key == "profiles":
            return doc, profile, "[profiles]"
        return doc, profile, f"[{key}]"
    elif kind == "profile key":
        key = draw(key_names.filter(lambda k: k not in ("base", "grid", "series", "description")))
        doc["profiles"][profile] = {key: 1}
    elif kind == "series":
        return doc | {"series": draw(st.one_of(st.integers(), st.just({"a": 1}),
                                               st.just([{"scheme": "proposed"}])))}, profile, "series"
    else:  # malformed TOML: a broken line appended to a valid document
        broken = draw(st.sampled_from(["[base", "lr = ", 'name = "open', "= 3", "depth = [1, 2", "[[series]\n",
                                       "seed = 1\nseed = 2", "x = 1 2"]))
        return _toml(doc) + "\n[tail]\n" + broken + "\n", profile, "is not valid TOML"
    return doc, profile, key


def test_spec_fuzz(tmp_path):
    counts: dict[str, int] = {}
    path = tmp_path / "fuzz.toml"  # one file, rewritten each case

    @SETTINGS
    @given(st.one_of(st.tuples(st.just("valid"), valid_specs()), st.tuples(st.just("invalid"), bad_specs())))
    def case(c):
        kind, (doc, profile, expect) = c
        counts[kind] = counts.get(kind, 0) + 1
        path.write_text(doc if isinstance(doc, str) else _toml(doc))
        if kind == "valid":
            exp = load_spec(path, profile)
            assert len(exp.runs) == expect and exp.profile == profile
            return
        with pytest.raises(UserError) as err:
            load_spec(path, profile)
        msg = _assert_one_line(err.value, expect, str(path))
        assert "Traceback" not in msg

    case()
    _report("TOML specs", counts)
