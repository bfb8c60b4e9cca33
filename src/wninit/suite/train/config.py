"""`RunConfig`: the one description of a run (docs/method.md §6.1), validated on construction, hashed to its id.

Every field that can change a result (data, model, scheme, optimizer, schedule, warmup, seed) enters
`RunConfig.run_id` when it differs from its default, beside the id's schema version
(`wninit.suite.train.run_ids`): a field added later with a default that keeps the old behaviour leaves every id
as it was. The execution-only fields (`device`, `threads`, `data_root`, `download`, `channels_last`,
`compile`) never enter it, so the same run on another machine keeps its id. Defaults are the reference
code's (docs/method.md §6.1: lr 0.01, momentum 0, weight decay 0, batch 128, 200 epochs, seed 1), except the
model, which defaults to the suite's WN MLP of depth 20 on the embedded real MNIST.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, fields

from wninit.suite.data.sources import AUGMENTED_DATASETS, DATASETS
from wninit.suite.rl.games import GAMES as RL_GAMES
from wninit.errors import UserError
from wninit.init.gains import DIRECTION_ALIASES, check_direction
from wninit.models import ARCHS, DEPTH_EXTRA, NORMS, blocks_per_stage, model_stem_gamma
from wninit.suite.train.accel import PRECISIONS
from wninit.suite.train.run_ids import RUN_ID_SCHEMA, digest
from wninit.suite.train.schedules import SCHEDULES

__all__ = ["RunConfig", "EXECUTION_FIELDS", "ARCHS", "NORMS", "TASKS", "DEVICES", "AUGMENTED_DATASETS"]

# Each choice list is its owner's object (models/, data/, init.py, train/schedules.py, train/accel.py), imported
# here, never restated; these three are the run's own.
TASKS = ("train", "hessian", "rl")
DEVICES = ("cpu", "cuda", "mps", "auto")
# Fields that say where and how fast a run executes, never what it computes: not in the run id.
EXECUTION_FIELDS = ("device", "threads", "data_root", "download", "channels_last", "compile")


@dataclass(frozen=True)
class RunConfig:
    """A complete, validated description of one training run (or one Hessian measurement at init).

    `mini_batch_size` splits each batch for gradient accumulation (None: no split). `crop` and
    `flip` are None for "the dataset's default" (on for CIFAR); `resolved` fills them.
    `hessian_batches` is the share of one epoch's training batches the Hessian is averaged over:
    a float in (0, 1] is a fraction (the reference's 0.1, docs/method.md §7.6), an int >= 1 a count.
    `stem_gamma` None is the model's own (2 for `resnet`, 1 for `wrn`: the reference classes');
    `reduced_memory` gives the WRN a stride-2 stem (the reference's option for very deep nets);
    `bn_reference` builds the BN nets as the reference code ran them (`wninit.models.resnet`).

    Examples:
        >>> cfg = RunConfig(dataset="mnist5k", arch="mlp", depth=20, lr=0.001, momentum=0.9, epochs=10)
        >>> cfg.replace(scheme="datadep").run_id != cfg.run_id
        True
    """
    dataset: str = "mnist5k"
    arch: str = "mlp"
    depth: int = 20
    width: int = 128
    k: int = 1
    norm: str = "wn"
    reduced_memory: bool = False
    bn_reference: bool = False
    scheme: str = "proposed"
    direction: str = "orthogonal"
    stem_gamma: float | None = None
    peer: str = "none"  # a normalizer-free peer after the scheme (wninit.peers): "fixup", "nf:alpha=0.4"...
    padding_gain: bool = False  # beyond the paper: each zero-padded conv's g corrected by its border coverage
    freeze_conv_bias: bool = False  # beyond the paper: conv biases held at their init, 0 (docs/results.md)
    lr: float = 0.01
    momentum: float = 0.0
    weight_decay: float = 0.0
    wd_exempt_gain_bias: bool = False
    batch_size: int = 128
    mini_batch_size: int | None = None
    epochs: int = 200
    schedule: int = 0
    warmup_epochs: float = 0.0
    warmup_lr: float = 0.0
    cutout: int = 0
    crop: bool | None = None
    flip: bool | None = None
    val_fraction: float = 0.1
    seed: int = 1
    task: str = "train"
    hessian_iters: int = 20
    hessian_batches: float | int = 0.1
    # task "rl" (wninit.suite.rl): environment steps in all (split into ``epochs`` chunks) and parallel games
    env_steps: int = 0
    n_envs: int = 16
    # execution only (not in run_id)
    device: str = "cpu"
    threads: int | None = None
    data_root: str | None = None
    download: bool = False
    channels_last: bool = False
    compile: bool = False
    # changes results (train/accel.py)
    precision: str = "fp32"
    # changes results: CPU kernels pinned to one instruction set (train/portable.py, docs/reproducibility.md)
    portable: bool = False

    def __post_init__(self):
        for f in fields(self):
            _check_field(self, f.name, getattr(self, f.name))
        _check_combinations(self)

    # -- derived ---------------------------------------------------------------------------------
    @property
    def accumulation_steps(self) -> int:
        """Mini-batches per SGD update (the reference's `batches_per_update`)."""
        return 1 if self.mini_batch_size is None else self.batch_size // self.mini_batch_size

    @property
    def loader_batch_size(self) -> int:
        """The batch the loader yields: `mini_batch_size` when accumulating (docs/method.md §6.1)."""
        return self.mini_batch_size or self.batch_size

    def resolved(self) -> "RunConfig":
        """This config with the auto fields filled: `crop`/`flip` from the dataset (docs/method.md §6.1),
        `stem_gamma` from the architecture (the gamma its model declares)."""
        augment = self.dataset in AUGMENTED_DATASETS
        stem = self.stem_gamma if self.stem_gamma is not None else model_stem_gamma(self.arch)
        return self.replace(crop=augment if self.crop is None else self.crop,
                            flip=augment if self.flip is None else self.flip, stem_gamma=stem)

    def result_fields(self) -> dict:
        """The resolved fields that can change a result and differ from their default: what `run_id` hashes.

        A default is left out (crop, flip and stem_gamma, None by default, are always in once resolved), so a
        field added with a default that keeps the old behaviour changes no id; changing a default changes
        what ids mean and bumps `wninit.suite.train.run_ids.RUN_ID_SCHEMA`.
        """
        d = self.resolved().to_dict()
        return {f.name: d[f.name] for f in fields(self) if f.name not in EXECUTION_FIELDS
                and not (d[f.name] == f.default and type(d[f.name]) is type(f.default))}

    @property
    def run_id(self) -> str:
        """The run's name: 12 hex digits of the sha256 of `{"schema": RUN_ID_SCHEMA, **result_fields()}` as
        canonical JSON (`wninit.suite.train.run_ids.digest`)."""
        return digest({"schema": RUN_ID_SCHEMA, **self.result_fields()})

    # -- (de)serialization -------------------------------------------------------------------------
    def replace(self, **changes) -> "RunConfig":
        """A copy with `changes` applied, validated again."""
        unknown = sorted(set(changes) - {f.name for f in fields(self)})
        if unknown:
            raise UserError(f"unknown RunConfig field {unknown[0]!r}: the fields are {', '.join(f.name for f in fields(self))}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def to_json(self, **kw) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, **kw)

    @classmethod
    def from_dict(cls, d: dict) -> "RunConfig":
        if not isinstance(d, dict):
            raise UserError(f"a run config must be a JSON object of fields, got {type(d).__name__}")
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise UserError(f"unknown RunConfig field {unknown[0]!r}: the fields are {', '.join(sorted(names))}")
        return cls(**d)

    @classmethod
    def from_json(cls, text: str) -> "RunConfig":
        try:
            d = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UserError(f"the run config is not valid JSON ({exc.msg} at line {exc.lineno}); fix the file") from None
        return cls.from_dict(d)


# -- validation ---------------------------------------------------------------------------------------
def _fail(name: str, allowed: str, value) -> None:
    raise UserError(f"RunConfig.{name} must be {allowed}, got {value!r}")


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_real(v) -> bool:
    return _is_int(v) or (isinstance(v, float) and math.isfinite(v))


def _set(cfg, name, value):  # canonicalize in a frozen dataclass (ints given for floats, aliases)
    object.__setattr__(cfg, name, value)


_CHOICES = {"dataset": DATASETS, "arch": ARCHS, "norm": NORMS, "task": TASKS, "device": DEVICES,
            "precision": PRECISIONS}
_POSITIVE_INTS = ("depth", "width", "k", "batch_size", "epochs", "hessian_iters", "n_envs")
_FLOATS = ("lr", "momentum", "weight_decay", "warmup_epochs", "warmup_lr", "val_fraction")


def _check_field(cfg: RunConfig, name: str, v) -> None:
    if name == "dataset" and isinstance(v, str) and v in RL_GAMES:
        return  # a game of task "rl" (_check_combinations pairs them)
    if name in _CHOICES:
        if v not in _CHOICES[name]:
            _fail(name, f"one of {', '.join(_CHOICES[name])}", v)
    elif name == "scheme":
        from wninit.init.schemes import SCHEMES
        if v not in SCHEMES:
            _fail(name, f"one of {', '.join(SCHEMES)}", v)
    elif name == "peer":
        from wninit.peers import parse_peer
        parse_peer(v)
    elif name == "direction":
        try:
            _set(cfg, name, check_direction(v))
        except ValueError:
            _fail(name, f"one of {', '.join(map(repr, DIRECTION_ALIASES))}", v)
    elif name in _POSITIVE_INTS:
        if not _is_int(v) or v < 1:
            _fail(name, "an integer >= 1", v)
    elif name in ("seed", "cutout", "env_steps"):
        if not _is_int(v) or v < 0:
            _fail(name, "an integer >= 0" + (" (0 = no cutout, else the hole's side, 16 in the reference)" if name == "cutout" else ""), v)
    elif name in _FLOATS:
        if not _is_real(v):
            _fail(name, "a finite number", v)
        _set(cfg, name, float(v))
        _check_range(name, float(v))
    elif name == "schedule":
        if not _is_int(v) or v not in SCHEDULES:
            _fail(name, f"one of {', '.join(map(str, SCHEDULES))} (the reference's lr_annealing_type, docs/method.md §6.1)", v)
    elif name in ("mini_batch_size", "threads"):
        if v is not None and (not _is_int(v) or v < 1):
            _fail(name, "None or an integer >= 1", v)
    elif name in ("crop", "flip"):
        if v is not None and not isinstance(v, bool):
            _fail(name, "True, False or None (None: the dataset's default)", v)
    elif name == "stem_gamma":
        if v is not None and (not _is_real(v) or v <= 0):
            _fail(name, "None (the model's own) or a finite number > 0", v)
        if v is not None:
            _set(cfg, name, float(v))
    elif name in ("wd_exempt_gain_bias", "download", "channels_last", "compile", "reduced_memory", "bn_reference",
                  "padding_gain", "freeze_conv_bias", "portable"):
        if not isinstance(v, bool):
            _fail(name, "True or False", v)
    elif name == "hessian_batches":
        if _is_int(v):
            if v < 1:
                _fail(name, "a fraction in (0, 1] of the epoch's batches or a count >= 1", v)
        elif not (isinstance(v, float) and 0 < v <= 1):
            _fail(name, "a fraction in (0, 1] of the epoch's batches or a count >= 1", v)
    elif name == "data_root":
        if v is not None and not isinstance(v, str):
            _fail(name, "None or a directory path", v)


def _check_range(name: str, v: float) -> None:
    if name == "lr" and v <= 0:
        _fail(name, "> 0", v)
    if name == "momentum" and not 0 <= v < 1:
        _fail(name, "in [0, 1)", v)
    if name in ("weight_decay", "warmup_epochs", "warmup_lr") and v < 0:
        _fail(name, ">= 0", v)
    if name == "val_fraction" and not 0 <= v < 1:
        _fail(name, "in [0, 1) (0 keeps no validation split and selects the last epoch)", v)


def _check_combinations(cfg: RunConfig) -> None:
    from wninit.init.schemes import PLAIN_SCHEMES, WN_SCHEMES

    # docs/method.md §7.7: the poster's un-normalized IMPALA keeps PyTorch's own init, named pytorch-default
    plain_default = cfg.task == "rl" and cfg.norm == "none" and cfg.scheme == "pytorch-default"
    if cfg.scheme in WN_SCHEMES and cfg.norm != "wn" and not plain_default:
        raise UserError(f"scheme {cfg.scheme!r} initializes weight-normalized networks: set norm='wn', "
                        f"or use one of {', '.join(PLAIN_SCHEMES)} with norm={cfg.norm!r}")
    if cfg.scheme in PLAIN_SCHEMES and cfg.norm == "wn":
        raise UserError(f"scheme {cfg.scheme!r} is for networks without weight norm: set norm='bn' or 'none', "
                        "or use 'pytorch-default' for the same directions under WN")
    _check_rl(cfg)
    if cfg.peer != "none":
        from wninit.peers import check_peer
        check_peer(cfg.peer, cfg.arch, cfg.norm)
    if cfg.task == "hessian" and cfg.precision != "fp32":
        raise UserError("RunConfig.precision must be 'fp32' for task 'hessian': the Hessian at init is measured "
                        f"in float32 (docs/method.md §7.6), got {cfg.precision!r}")
    if cfg.mini_batch_size is not None and (cfg.mini_batch_size > cfg.batch_size or cfg.batch_size % cfg.mini_batch_size):
        raise UserError(f"RunConfig.mini_batch_size must divide batch_size {cfg.batch_size}, got {cfg.mini_batch_size}")
    if cfg.warmup_epochs >= cfg.epochs and cfg.warmup_epochs > 0:
        raise UserError(f"RunConfig.warmup_epochs must be shorter than training ({cfg.epochs} epochs), got {cfg.warmup_epochs}")
    if cfg.reduced_memory and cfg.arch != "wrn":
        raise UserError(f"RunConfig.reduced_memory (a stride-2 stem) is an option of arch 'wrn', not {cfg.arch!r}")
    if cfg.bn_reference and (cfg.norm != "bn" or cfg.arch not in ("resnet", "wrn")):
        raise UserError("RunConfig.bn_reference builds the reference code's BN ResNets: set norm='bn' and arch "
                        f"'resnet' or 'wrn', got norm={cfg.norm!r}, arch={cfg.arch!r}")
    extra = DEPTH_EXTRA.get(cfg.arch)
    if extra is not None and not _is_depth(cfg.depth, extra, cfg.arch):
        raise UserError(f"RunConfig.depth must be 6N+{extra} with N >= 1 for arch {cfg.arch!r} "
                        f"(e.g. {6 + extra} or {6 * 9 + extra}), got {cfg.depth}")


def _check_rl(cfg: RunConfig) -> None:
    """A run of task "rl" names a game and the IMPALA trunk, and trains for env_steps > 0; no other run does."""
    if cfg.task != "rl":
        if cfg.dataset in RL_GAMES:
            raise UserError(f"dataset {cfg.dataset!r} is a game: set task='rl' to train an agent on it")
        return
    if cfg.dataset not in RL_GAMES:
        raise UserError(f"task 'rl' needs a game as dataset: one of {', '.join(RL_GAMES)}, got {cfg.dataset!r}")
    if cfg.arch != "impala" or cfg.norm == "bn" or cfg.scheme == "datadep" or cfg.peer != "none":
        raise UserError("task 'rl' trains arch 'impala' with norm 'wn' or 'none', a scheme other than datadep and no "
                        f"peer, got arch={cfg.arch!r}, norm={cfg.norm!r}, scheme={cfg.scheme!r}, peer={cfg.peer!r}")
    if cfg.env_steps < 1:
        raise UserError("task 'rl' needs RunConfig.env_steps >= 1, the environment steps to train for")


def _is_depth(depth: int, extra: int, arch: str) -> bool:
    try:
        blocks_per_stage(depth, extra, arch)
    except ValueError:
        return False
    return True
