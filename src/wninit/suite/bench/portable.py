"""Portable mode (docs/reproducibility.md): the same quick runs with this machine's own kernels and with a lower
instruction set forced on it, with and without the pin, side by side: which runs are bit-identical, and what the
pin costs in speed.

The forced settings stand in for another x86 machine: ATen's vectorized ops at ``default`` (no AVX), oneDNN
capped at SSE4.1 and MKL's dispatch capped at SSE4.2 (``MKL_ENABLE_INSTRUCTIONS``, a different knob from the
pin's ``MKL_CBWR``). Each (settings, pin) pair runs in a fresh process, since the libraries read their choice
once when they load. A run's fingerprint is the sha256 of every epoch row and metric at full float precision.

Runs (one torch thread each, so that thread count is not what differs):
- ``mlp``: WN MLP depth 20, width 128, on the embedded real MNIST, 2 epochs (GEMMs, the suite's main case);
- ``wrn``: WN WRN-10-1 on the 8x8 digits, 1 epoch (convolutions: oneDNN, or ATen + MKL under the pin).

Times are process CPU seconds (robust to other processes on a shared machine), wall seconds in brackets, medians
over ``--repeats``. Run: ``python -m wninit.suite.bench.portable [--repeats N] [--json FILE]``.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

RUNS = {
    "mlp": dict(dataset="mnist5k", arch="mlp", depth=20, width=128, epochs=2, lr=0.003, momentum=0.9, seed=1,
                threads=1),
    "wrn": dict(dataset="digits", arch="wrn", depth=10, k=1, epochs=1, lr=0.01, batch_size=64, seed=1, threads=1),
}
FORCED = {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2"}
PIN_VARS = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_CBWR", "MKL_ENABLE_INSTRUCTIONS")

CHILD = r"""
import hashlib, json, sys, time
import torch
from wninit.suite.train import RunConfig, fit
from wninit.suite.train.runtime import kernel_isa
cfg = RunConfig(**json.loads(sys.argv[1]))
start, cpu = time.perf_counter(), time.process_time()
r = fit(cfg)
wall, cpu = time.perf_counter() - start, time.process_time() - cpu
rows = json.dumps([r.epochs, r.test_acc, r.best_val_acc, r.log_hessian_norm], sort_keys=True, default=repr)
print(json.dumps({"fingerprint": hashlib.sha256(rows.encode()).hexdigest()[:16], "wall_s": wall, "cpu_s": cpu,
                  "isa": kernel_isa(), "test_acc": r.test_acc, "last_train_loss": r.epochs[-1]["train_loss"]}))
"""


def one(run: str, forced: bool, portable: bool) -> dict:
    from wninit.suite.train.portable import pinned_env

    env = {k: v for k, v in os.environ.items() if k not in PIN_VARS}
    if forced:
        env.update(FORCED)
    if portable:
        env = pinned_env(env)
    cfg = {**RUNS[run], "portable": portable}
    done = subprocess.run([sys.executable, "-c", CHILD, json.dumps(cfg)], env=env, capture_output=True, text=True,
                          check=False)
    if done.returncode:
        raise RuntimeError(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def _median(values):
    values = sorted(values)
    return values[len(values) // 2]


def run(quick: bool = False, repeats: int = 1) -> dict:
    """Each of RUNS in default and portable mode, with this machine's kernels and with the forced lower ones."""
    from wninit.suite.train.runtime import cpu_model

    rows = []
    for name in RUNS:
        for portable in (False, True):
            cells = {}
            for forced in (False, True):
                tries = [one(name, forced, portable) for _ in range(repeats)]
                assert len({t["fingerprint"] for t in tries}) == 1, f"{name}: a rerun in the same settings differs"
                cells[forced] = {**tries[0], **{k: _median([t[k] for t in tries]) for k in ("wall_s", "cpu_s")}}
            same = cells[False]["fingerprint"] == cells[True]["fingerprint"]
            rows.append({"run": name, "portable": portable, "native": cells[False], "forced": cells[True],
                         "identical": same})
    return {"cpu": cpu_model(), "table": rows, "time": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def table(result: dict) -> str:
    rows = result["table"]
    lines = [f"CPU: {result['cpu']}",
             f"{'run':<5} {'mode':<9} {'native: isa, fingerprint, CPU s (wall s)':<46} "
             f"{'forced: isa, fingerprint, CPU s (wall s)':<46} same"]
    for row in rows:
        cells = [f"{c['isa']:<8} {c['fingerprint']} {c['cpu_s']:6.1f} ({c['wall_s']:5.1f})     "
                 for c in (row["native"], row["forced"])]
        lines.append(f"{row['run']:<5} {'portable' if row['portable'] else 'default':<9} {cells[0]:<46} {cells[1]:<46} "
                     f"{'yes' if row['identical'] else 'NO'}")
    for name in dict.fromkeys(r["run"] for r in rows):
        base, pin = (next(r for r in rows if r["run"] == name and r["portable"] is p) for p in (False, True))
        lines.append(f"{name}: portable costs {pin['native']['cpu_s'] / base['native']['cpu_s']:.2f}x the native CPU "
                     f"time; without the pin native vs forced: train loss {base['native']['last_train_loss']!r} vs "
                     f"{base['forced']['last_train_loss']!r}, test acc {base['native']['test_acc']} vs "
                     f"{base['forced']['test_acc']}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=1, help="runs per cell; the wall time is the median")
    parser.add_argument("--json", metavar="FILE", help="also write the table as JSON")
    args = parser.parse_args(argv)
    result = run(repeats=args.repeats)
    print(table(result))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
