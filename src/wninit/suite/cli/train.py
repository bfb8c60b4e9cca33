"""`wninit train ... --out DIR`: one run of the reference protocol (docs/method.md §6.1), one flag per RunConfig field.

Writes `DIR/epochs.csv` (the reference's columns) every epoch and `DIR/result.json` at the end, and
prints a one-line summary. The same command continues an interrupted run from its checkpoint; a
finished one is not trained again. A diverged run is a result (exit 0); bad input exits 2.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import MISSING, fields
from pathlib import Path

from wninit.errors import UserError

__all__ = ["add_arguments", "run", "config_from_args"]

HELP = "train one run (the reference protocol) and write its results"  # its line in `wninit --help`

# A first `wninit train` with no --config finishes in seconds on a CPU; the paper's 200 epochs are one flag away.
FIRST_RUN = {"epochs": 10}

_HELP = {
    "dataset": "mnist, cifar10, cifar100, mnist5k (embedded real MNIST), digits, synthetic",
    "arch": "mlp, cnn, resnet (depth 6N+2), wrn (depth 6N+4)",
    "depth": "hidden layers (mlp, cnn) or total depth (resnet, wrn)",
    "width": "hidden width (mlp, cnn) or first-stage width (resnet)",
    "k": "WRN widening factor",
    "norm": "wn, bn or none",
    "scheme": "proposed, proposed-backward, pytorch-default, datadep, hanin (norm wn); he, orthogonal, xavier",
    "direction": "orthogonal or gaussian (alias he): the distribution of v",
    "stem_gamma": "gamma of the first conv of resnet/wrn (default: the model's own, 2 for resnet and 1 for wrn, as the reference classes)",
    "reduced_memory": "wrn only: a stride-2 first conv (the reference's option for very deep nets)",
    "bn_reference": "norm bn, resnet/wrn: the reference code's BN nets (BN weight U(0,1), conv biases, bn1 twice)",
    "lr": "learning rate (> 0)",
    "momentum": "SGD momentum in [0, 1)",
    "weight_decay": "weight decay (on all parameters, as the reference)",
    "wd_exempt_gain_bias": "exempt g, BN weights and biases from weight decay",
    "batch_size": "examples per SGD update",
    "mini_batch_size": "split each batch into mini-batches of this size (gradient accumulation)",
    "epochs": "training epochs (the paper's protocol: 200)",
    "schedule": "the reference's lr schedule 0-5 (0 constant, 1 T/3 2T/3, 2 T/2 3T/4, 3 WRN, 4/5 epochs 91 136)",
    "warmup_epochs": "quadratic warmup length in epochs (may be fractional)",
    "warmup_lr": "lr at the start of the warmup",
    "cutout": "cutout hole side (0 = none; the reference's is 16)",
    "crop": "random crop with 4-pixel padding (default: on for CIFAR)",
    "flip": "random horizontal flip (default: on for CIFAR)",
    "val_fraction": "share of the training set held out for validation",
    "seed": "random seed",
    "task": "train, or hessian: log spectral norm of the Hessian at init, no training, or rl: an A2C agent on a "
            "MinAtar game (--dataset minatar-breakout ..., --arch impala; needs the rl extra)",
    "env_steps": "for --task rl: environment steps in all, split into --epochs chunks",
    "n_envs": "for --task rl: games played in parallel",
    "hessian_iters": "power iterations for --task hessian",
    "hessian_batches": "batches for --task hessian: a fraction of an epoch (0.1) or a count (10)",
    "device": "cpu, cuda, mps or auto (not part of the run id)",
    "threads": "torch CPU threads (not part of the run id)",
    "data_root": "dataset folder (default $WNINIT_DATA or ~/.cache/wninit/data)",
    "download": "download missing dataset files (checksummed)",
    "channels_last": "NHWC layout for conv weights and batches (GPU; not part of the run id)",
    "compile": "train through torch.compile (pays off on long runs; not part of the run id)",
    "precision": "fp32, or bf16: forward and loss under bf16 autocast, fp32 weights and update",
    "portable": "pin CPU kernels to one instruction set: the same result on any x86 machine (docs/reproducibility.md)",
}


def _fraction_or_count(text: str) -> float | int:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction like 0.1 or a count like 10, got {text!r}") from None


def _type_of(name: str, default):
    if name == "hessian_batches":
        return _fraction_or_count
    if name == "stem_gamma":
        return float
    if name in ("mini_batch_size", "threads") or isinstance(default, int) and not isinstance(default, bool):
        return int
    if isinstance(default, float):
        return float
    return str


def add_arguments(p: argparse.ArgumentParser) -> None:
    from wninit.suite.train.config import RunConfig

    p.add_argument("--out", metavar="DIR", help="run directory: epochs.csv, checkpoint.pt, result.json")
    p.add_argument("--config", metavar="FILE", help="start from a RunConfig JSON (or a result.json); flags override it")
    p.add_argument("--restart", action="store_true", help="ignore DIR's checkpoint and result; train from scratch")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar (default: when stderr is a terminal)")
    p.add_argument("--tensorboard", action="store_true", help="also log to DIR/tb (needs tensorboard)")
    from wninit.peers import PEERS

    helps = dict(_HELP, peer="a normalizer-free peer of the paper's init, applied to a norm none network: none, "
                 f"{', '.join(PEERS)}; with options as nf:alpha=0.4 (docs/peers.md)")
    group = p.add_argument_group("run (RunConfig fields; defaults in brackets)")
    for f in fields(RunConfig):
        default = FIRST_RUN.get(f.name, None if f.default is MISSING else f.default)
        flag = "--" + f.name.replace("_", "-")
        help_text = f"{helps.get(f.name, f.name.replace('_', ' '))} [{default}]"
        if isinstance(default, bool) or f.name in ("crop", "flip"):
            group.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS,
                               help=help_text)
        else:
            group.add_argument(flag, dest=f.name, type=_type_of(f.name, default), default=argparse.SUPPRESS,
                               metavar=f.name.upper(), help=help_text)


def config_from_args(args: argparse.Namespace):
    """The RunConfig of these arguments: `--config`'s (or the defaults), overridden by each flag given."""
    from wninit.suite.train.config import RunConfig

    overrides = {f.name: getattr(args, f.name) for f in fields(RunConfig) if hasattr(args, f.name)}
    if getattr(args, "config", None):
        path = Path(args.config)
        if not path.is_file():
            raise UserError(f"config file {str(path)!r} not found; pass a RunConfig JSON or a result.json")
        import json
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise UserError(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno}); fix or regenerate it") from None
        except UnicodeDecodeError:
            raise UserError(f"{path} is not a text file, so not a RunConfig JSON; pass a RunConfig JSON or a "
                            "result.json") from None
        base = RunConfig.from_dict(data.get("config", data) if isinstance(data, dict) else data)
        return base.replace(**overrides)
    return RunConfig(**{**FIRST_RUN, **overrides})


def run(args: argparse.Namespace) -> int:
    from wninit.suite.train.single_run import fit

    from wninit.suite.train import portable

    cfg = config_from_args(args)
    if cfg.portable and not portable.active():
        return portable.rerun_pinned(args._argv)
    progress = sys.stderr.isatty() if args.progress is None else args.progress
    result = fit(cfg, out_dir=args.out, resume=not args.restart, progress=progress, tensorboard=args.tensorboard)
    print(result.summary())
    return 0
