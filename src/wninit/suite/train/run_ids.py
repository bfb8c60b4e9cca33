"""Run ids: the digest that names a run, and the frozen formula of the ids made before they carried a schema.

A run id is 12 hex digits of the sha256 of a canonical JSON object (sorted keys, no spaces). Since schema 2
(`RUN_ID_SCHEMA`) the object is `{"schema": 2, **the result fields that differ from RunConfig's
defaults}` (`wninit.suite.train.RunConfig.run_id`): a new field whose default keeps the old behaviour never
changes an id, and a change of what a field means bumps the schema, so every id changes at once.

The ids of schema 1 hashed every result field and special-cased the fields added later. Their formula is
frozen here, used only to find a stored run or a run directory under the id it had then
(`wninit.suite.sweep.store` maps a store's old ids on open); nothing new is ever named by it.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import fields

__all__ = ["RUN_ID_SCHEMA", "digest", "legacy_fields", "legacy_run_id", "same_run"]

# Bump when a field changes meaning, or when a RunConfig default changes (a default is left out of the hash).
RUN_ID_SCHEMA = 2

# -- schema 1, frozen -----------------------------------------------------------------------------------
# The result fields RunConfig had when schema 1 was frozen; a field added since must be at its default.
_V1_FIELDS = ("dataset", "arch", "depth", "width", "k", "norm", "reduced_memory", "bn_reference", "scheme",
              "direction", "stem_gamma", "peer", "lr", "momentum", "weight_decay", "wd_exempt_gain_bias",
              "batch_size", "mini_batch_size", "epochs", "schedule", "warmup_epochs", "warmup_lr", "cutout", "crop",
              "flip", "val_fraction", "seed", "task", "hessian_iters", "hessian_batches", "precision")
# Fields added after the first stores were written: left out of a schema-1 id at these values.
_V1_OMITTED_AT = {"precision": "fp32", "peer": "none", "reduced_memory": False, "bn_reference": False}
# Their Gaussian directions changed from N(0, 2/fan_in) to N(0, 1/fan_in): a marker gave them new ids.
_V1_UNIT_GAUSSIAN_SCHEMES = ("proposed", "proposed-backward", "hanin")


def digest(obj: dict) -> str:
    """12 hex digits of the sha256 of `obj` as canonical JSON (sorted keys, no spaces)."""
    canonical = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def legacy_fields(cfg) -> dict | None:
    """What a schema-1 id hashed for `cfg` (a RunConfig); None when no schema-1 run could have been `cfg`
    (a field added since is off its default)."""
    from wninit.suite.train.config import EXECUTION_FIELDS

    d = cfg.resolved().to_dict()
    for f in fields(cfg):
        if f.name not in _V1_FIELDS and f.name not in EXECUTION_FIELDS and d[f.name] != f.default:
            return None
    out = {name: d[name] for name in _V1_FIELDS
           if not (name in _V1_OMITTED_AT and d[name] == _V1_OMITTED_AT[name])}
    if out["direction"] == "gaussian" and out["scheme"] in _V1_UNIT_GAUSSIAN_SCHEMES:
        out["gaussian_gain"] = 1.0
    return out


def legacy_run_id(cfg) -> str | None:
    """The schema-1 id of `cfg`: the id a store or run directory written before schema 2 knows it by."""
    d = legacy_fields(cfg)
    return None if d is None else digest(d)


def same_run(stored_id: str, cfg) -> bool:
    """Whether `stored_id` names `cfg`: its id, or its schema-1 id (a file written by an older wninit)."""
    return stored_id == cfg.run_id or stored_id == legacy_run_id(cfg)
