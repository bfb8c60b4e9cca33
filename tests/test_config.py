"""RunConfig: validated on construction, exact JSON round trip, run id over the result-affecting fields."""
import re

import pytest

from wninit.errors import UserError
from wninit.suite.train.config import EXECUTION_FIELDS, RunConfig
from wninit.suite.train.run_ids import legacy_run_id


def test_defaults_are_the_reference_optimizer_defaults():
    cfg = RunConfig()
    # docs/method.md §6.1: lr 0.01, momentum 0, weight decay 0 on all params, batch 128, 200 epochs, seed 1, val 10%
    assert (cfg.lr, cfg.momentum, cfg.weight_decay, cfg.wd_exempt_gain_bias) == (0.01, 0.0, 0.0, False)
    assert (cfg.batch_size, cfg.epochs, cfg.seed, cfg.val_fraction, cfg.schedule) == (128, 200, 1, 0.1, 0)
    assert (cfg.dataset, cfg.arch, cfg.depth, cfg.width, cfg.scheme) == ("mnist5k", "mlp", 20, 128, "proposed")


def test_json_round_trip_is_exact():
    cfg = RunConfig(dataset="cifar10", arch="wrn", depth=16, k=2, lr=0.1 + 0.2, momentum=0.9, weight_decay=5e-4,
                    batch_size=128, mini_batch_size=32, epochs=200, schedule=3, warmup_epochs=1.5, warmup_lr=1e-7,
                    cutout=16, crop=True, flip=None, seed=7, device="auto", threads=3, data_root="/tmp/x",
                    task="hessian", hessian_batches=3)
    back = RunConfig.from_json(cfg.to_json())
    assert back == cfg and back.run_id == cfg.run_id
    assert back.lr == 0.1 + 0.2  # floats survive bit for bit


def test_run_id_ignores_execution_fields_and_resolves_auto_fields():
    cfg = RunConfig(dataset="cifar10", arch="cnn", depth=5)
    for name, value in {"device": "auto", "threads": 4, "data_root": "/data", "download": True}.items():
        assert cfg.replace(**{name: value}).run_id == cfg.run_id
    assert set(EXECUTION_FIELDS) <= set(cfg.to_dict()) and not set(EXECUTION_FIELDS) & set(cfg.result_fields())
    # crop/flip None means "the dataset's default": on for CIFAR (docs/method.md §6.1), off for MNIST
    assert cfg.resolved().crop is True and cfg.resolved().flip is True
    assert cfg.replace(crop=True, flip=True).run_id == cfg.run_id
    assert cfg.replace(flip=False).run_id != cfg.run_id
    assert RunConfig(dataset="mnist5k").resolved().crop is False
    # every result field changes the id
    assert len({cfg.run_id, cfg.replace(seed=2).run_id, cfg.replace(lr=0.02).run_id,
                cfg.replace(wd_exempt_gain_bias=True).run_id, cfg.replace(scheme="datadep").run_id}) == 5


# Literal ids, computed once: a change to the id's formula, to a default or to a field's canonical form fails here.
PINNED_IDS = [
    (RunConfig(), "91d89ee3e552"),
    (RunConfig(dataset="digits", depth=2, width=8, epochs=2), "2ff0605b1077"),
    (RunConfig(dataset="cifar10", arch="resnet", depth=8, norm="bn", scheme="he", bn_reference=True, epochs=3),
     "acb74d280e73"),
    (RunConfig(dataset="digits", depth=2, width=8, epochs=2, direction="gaussian"), "b940081898c8"),
]


@pytest.mark.parametrize("cfg, want", PINNED_IDS)
def test_run_ids_are_pinned(cfg, want):
    assert cfg.run_id == want


def test_run_id_hashes_the_fields_off_their_default_and_the_schema():
    cfg = RunConfig(dataset="digits", depth=2, width=8, epochs=2)
    # the resolved auto fields are always in; every other field only off its default
    assert cfg.result_fields() == {"dataset": "digits", "depth": 2, "width": 8, "epochs": 2, "stem_gamma": 1.0,
                                   "crop": False, "flip": False}
    # a field given at its default is the same run as the field left out
    assert cfg.replace(lr=0.01, seed=1, precision="fp32", peer="none").run_id == cfg.run_id
    # the schema version is hashed: the same fields under another schema are another id
    import wninit.suite.train.config as config

    orig, before = config.RUN_ID_SCHEMA, cfg.run_id
    try:
        config.RUN_ID_SCHEMA = orig + 1
        assert cfg.run_id != before
    finally:
        config.RUN_ID_SCHEMA = orig


def test_a_new_field_at_its_default_keeps_every_id():
    """The point of the schema: a field added with a default that keeps the old behaviour needs no special case."""
    import dataclasses

    extended = dataclasses.make_dataclass("Extended", [("new_option", bool, dataclasses.field(default=False))],
                                          bases=(RunConfig,), frozen=True)
    for cfg, want in PINNED_IDS:
        grown = extended(**cfg.to_dict())
        assert grown.run_id == want and grown.replace(new_option=True).run_id != want
        # the frozen schema-1 formula: the same old id at the default, none for a run no old wninit could make
        assert legacy_run_id(grown) == legacy_run_id(cfg) and legacy_run_id(grown.replace(new_option=True)) is None


def test_numbers_are_canonicalized():
    a, b = RunConfig(lr=1, warmup_epochs=2, epochs=5), RunConfig(lr=1.0, warmup_epochs=2.0, epochs=5)
    assert a == b and a.run_id == b.run_id and isinstance(a.lr, float)
    assert RunConfig(direction="he").direction == "gaussian"


def test_replace_validates_and_rejects_unknown_fields():
    cfg = RunConfig()
    assert cfg.replace(depth=50).depth == 50 and cfg.depth == 20
    with pytest.raises(UserError, match="unknown RunConfig field 'lrr'"):
        cfg.replace(lrr=0.1)
    with pytest.raises(UserError, match="lr"):
        cfg.replace(lr=0)
    with pytest.raises(UserError, match="unknown RunConfig field"):
        RunConfig.from_json('{"nope": 1}')
    with pytest.raises(UserError, match="not valid JSON"):
        RunConfig.from_json("{")


BAD = [
    (dict(dataset="imagenet"), "dataset"),
    (dict(arch="vit"), "arch"),
    (dict(depth=0), "depth"),
    (dict(depth=2.5), "depth"),
    (dict(norm="ln"), "norm"),
    (dict(scheme="lsuv"), "scheme"),
    (dict(scheme="he"), "norm='bn' or 'none'"),               # a plain scheme on a WN net
    (dict(norm="bn", scheme="proposed"), "set norm='wn'"),      # a WN scheme on a BN net
    (dict(direction="uniform"), "direction"),
    (dict(lr=0.0), "lr"),
    (dict(lr=-1.0), "lr"),
    (dict(lr=float("nan")), "lr"),
    (dict(momentum=1.0), "momentum"),
    (dict(weight_decay=-1e-4), "weight_decay"),
    (dict(batch_size=0), "batch_size"),
    (dict(batch_size=128, mini_batch_size=48), "mini_batch_size"),
    (dict(batch_size=64, mini_batch_size=128), "mini_batch_size"),
    (dict(epochs=0), "epochs"),
    (dict(schedule=6), "schedule"),
    (dict(epochs=5, warmup_epochs=5), "warmup_epochs"),
    (dict(warmup_epochs=-1), "warmup_epochs"),
    (dict(warmup_lr=-0.1), "warmup_lr"),
    (dict(cutout=-16), "cutout"),
    (dict(crop="yes"), "crop"),
    (dict(val_fraction=1.0), "val_fraction"),
    (dict(seed=-1), "seed"),
    (dict(task="eval"), "task"),
    (dict(hessian_batches=0.0), "hessian_batches"),
    (dict(hessian_batches=1.5), "hessian_batches"),
    (dict(hessian_batches=0), "hessian_batches"),
    (dict(device="tpu"), "device"),
    (dict(threads=0), "threads"),
    (dict(arch="resnet", depth=21), "6N\\+2"),
    (dict(arch="wrn", depth=20), "6N\\+4"),
    (dict(wd_exempt_gain_bias=1), "wd_exempt_gain_bias"),
]


@pytest.mark.parametrize("kw,field", BAD)
def test_bad_values_raise_one_sentence_naming_the_field(kw, field):
    with pytest.raises(UserError, match=field) as info:
        RunConfig(**kw)
    message = str(info.value)
    assert "\n" not in message and not re.search(r"\.\s+[A-Z]", message)  # one sentence


def test_good_combinations():
    RunConfig(arch="resnet", depth=56, width=16, norm="bn", scheme="orthogonal")
    RunConfig(arch="wrn", depth=40, k=10, scheme="hanin", direction="gaussian")
    RunConfig(norm="none", scheme="he", batch_size=128, mini_batch_size=32)
    assert RunConfig(batch_size=128, mini_batch_size=32).accumulation_steps == 4
    assert RunConfig(batch_size=128, mini_batch_size=32).loader_batch_size == 32
    assert RunConfig(hessian_batches=1.0).hessian_batches == 1.0 and RunConfig(hessian_batches=4).hessian_batches == 4
