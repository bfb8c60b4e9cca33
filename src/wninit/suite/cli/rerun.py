"""`wninit rerun RUN_ID --store FILE.db [--out DIR]`: train one stored run again and compare.

Same config, same machine, same torch -> the metrics must be bit-identical on CPU ; the command says whether they are, metric by metric.
A portable run (docs/reproducibility.md) is rerun with its kernels pinned again, so it must be bit-identical on
any x86 machine too.
"""
from __future__ import annotations

import argparse
import json

from wninit.errors import UserError

__all__ = ["add_arguments", "run", "compare"]

HELP = "re-run one stored run and say whether its metrics are identical"  # its line in `wninit --help`


def add_arguments(p: argparse.ArgumentParser) -> None:
    from wninit.suite.train.config import DEVICES

    p.add_argument("run_id", metavar="RUN_ID", help="a run id (or a unique prefix) from the store")
    p.add_argument("--store", metavar="FILE.db", required=True, help="the store the run is in")
    p.add_argument("--out", metavar="DIR", help="keep the rerun's epochs.csv, checkpoint and result.json here")
    p.add_argument("--device", choices=DEVICES, help="device (default: the stored run's)")
    p.add_argument("--threads", type=int, metavar="N", help="torch threads (default: the stored run's; bitwise "
                   "equality on CPU needs the same count)")


def compare(stored: dict, fresh: dict, stored_epochs: list[dict], fresh_epochs: list[dict]) -> list[str]:
    """Lines naming every metric (and epoch value) that differs; empty when identical."""
    diffs = [f"{k}: stored {stored.get(k)!r}, now {fresh.get(k)!r}" for k in stored if stored.get(k) != fresh.get(k)]
    if len(stored_epochs) != len(fresh_epochs):
        diffs.append(f"epochs: stored {len(stored_epochs)}, now {len(fresh_epochs)}")
    for a, b in zip(stored_epochs, fresh_epochs):
        for k in a:
            if a[k] != b.get(k):
                diffs.append(f"epoch {a['epoch']} {k}: stored {a[k]!r}, now {b.get(k)!r}")
    return diffs


def run(args) -> int:
    import torch

    from wninit.suite.sweep.store import FINISHED, METRIC_KEYS, Store
    from wninit.suite.train import portable
    from wninit.suite.train.runtime import kernel_isa
    from wninit.suite.train.single_run import fit

    with Store(args.store, create=False) as store:
        record = store.run(args.run_id)
        stored_epochs = store.epochs(record.id)
    cfg = record.config
    if cfg.portable and not portable.active():
        return portable.rerun_pinned(args._argv)  # the stored run's kernels were pinned: so are the rerun's
    if args.device:
        cfg = cfg.replace(device=args.device)
    if args.threads is not None:
        if args.threads < 1:
            raise UserError(f"--threads must be at least 1, got {args.threads}")
        cfg = cfg.replace(threads=args.threads)
    elif record.threads:
        cfg = cfg.replace(threads=record.threads)  # bitwise equality needs the sweep's thread count
    print(f"rerunning {record.id} ({', '.join(record.experiments) or 'no experiment'}; stored status {record.status}, "
          f"wninit {record.wninit_version}, torch {record.torch_version}, {record.device}; made on "
          f"{record.cpu or 'an unrecorded CPU'}, kernels {record.isa or 'not recorded'}"
          f"{', portable' if cfg.portable else ''})")
    result = fit(cfg, out_dir=args.out, resume=False)
    fresh = {k: getattr(result, k) for k in METRIC_KEYS}
    print(result.summary())
    if record.status not in FINISHED:
        print(f"the stored run has status {record.status}, so there are no metrics to compare")
        return 0
    diffs = compare(record.metrics, json.loads(json.dumps(fresh)), stored_epochs, result.epochs)
    same_env = record.torch_version == torch.__version__
    if not diffs:
        print("identical: every metric and every epoch row equals the stored run")
        return 0
    print(f"different ({len(diffs)} values):")
    for line in diffs[:20]:
        print(f"  {line}")
    if not same_env:
        print(f"  note: the run was stored by torch {record.torch_version}, this is torch {torch.__version__}")
    if not cfg.portable and record.isa and record.isa != kernel_isa():
        print(f"  note: the run's kernels used {record.isa}, these use {kernel_isa()}: only a portable run "
              "reproduces bit for bit across instruction sets (docs/reproducibility.md)")
    return 1
