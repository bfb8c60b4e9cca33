"""Signal-propagation diagnostics at scale: forward+backward ratios of a 10,000-layer WN Wide ResNet on CPU.

The paper trains WN WRNs of up to 10,000 layers (docs/method.md §7.3, N = 1666, k = 1); ``wninit.diagnostics.propagation``
must measure one on a laptop: target under 60 s and 8 GB on a 2-core CPU. Side by side, per depth:

- ``build`` / ``init``: constructing the WN WRN and ``wninit.initialize(model, "proposed")``;
- ``bare``: one forward + backward to the input (``torch.autograd.grad``), nothing measured: the floor;
- ``diagnostics``: :func:`wninit.diagnostics.propagation` at every residual block (forward norms in hooks,
  gradients w.r.t. the 3N block outputs, per-sample norms).

Each depth runs in its own fresh Python process, so that its peak resident memory (``ru_maxrss``, which
only grows) is its own: ``peak after bare`` then ``peak after diagnostics`` (the larger is the run's peak).
Wall and process CPU time are both reported: CPU time is robust to other processes on a shared machine.
Run: ``python -m wninit.suite.bench.diagnostics [--quick] [--out DIR] [--threads T] [--batch N] [--size S]``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys

from wninit.suite.bench.common import write_json

DEPTHS, QUICK_DEPTHS = (1000, 10000), (100, 1000)  # WRN depth 6N+4: N = 166, 1666 (quick: 16, 166)
# The diagnostics of the paper's 10,000-layer ResNet within a minute and 8 GB: what a laptop with 2 cores
# can give a user checking their own deep model before training it.
TARGET_S, TARGET_GB = 60.0, 8.0

# The measurement, run in a fresh interpreter per depth; prints one JSON line.
_CHILD = r"""
import json, resource, sys, time
import torch
import wninit
from wninit.diagnostics import propagation
from wninit.models import WideResNet

p = json.loads(sys.argv[1])
torch.set_num_threads(p["threads"])

def timed(fn):
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c

def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux

start_mb = peak_mb()
model, build_s, _ = timed(lambda: WideResNet(p["depth"], p["k"], 10))
_, init_s, _ = timed(lambda: wninit.initialize(model, "proposed", generator=torch.Generator().manual_seed(0)))
x = torch.randn(p["batch"], 3, p["size"], p["size"], generator=torch.Generator().manual_seed(1))

def bare():
    xr = x.clone().requires_grad_(True)
    out = model(xr)
    return torch.autograd.grad(out, xr, torch.randn_like(out))

_, bare_s, bare_cpu = timed(bare)
bare_mb = peak_mb()
table, diag_s, diag_cpu = timed(lambda: propagation(model, x))
n = model.blocks_per_stage
pos = table.column("forward_position_mean")
stage = [pos[n - 1]] + [pos[(s + 1) * n - 1] / pos[s * n - 1] for s in (1, 2)]
print(json.dumps(dict(p, blocks=3 * n, points=len(table), build_s=build_s, init_s=init_s, bare_s=bare_s,
                      bare_cpu_s=bare_cpu, diag_s=diag_s, diag_cpu_s=diag_cpu, start_mb=start_mb,
                      bare_peak_mb=bare_mb, diag_peak_mb=peak_mb(), stage_factors=stage,
                      backward_first=table.rows[0].backward_mean)))
"""


def _measure(depth: int, *, k: int, batch: int, size: int, threads: int) -> dict:
    params = dict(depth=depth, k=k, batch=batch, size=size, threads=threads)
    proc = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(params)], capture_output=True, text=True)
    if proc.returncode != 0:
        return dict(params, error=(proc.stderr.strip().splitlines() or ["killed"])[-1])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(quick: bool, *, threads: int | None = None, batch: int = 4, size: int = 32, k: int = 1) -> dict:
    """One row per depth (each in its own process); JSON-able."""
    threads = threads or min(2, os.cpu_count() or 1)
    rows = [_measure(d, k=k, batch=batch, size=size, threads=threads) for d in (QUICK_DEPTHS if quick else DEPTHS)]
    return {"benchmark": "bench_diagnostics", "quick": quick, "target": {"seconds": TARGET_S, "gigabytes": TARGET_GB},
            "machine": {"cpu_count": os.cpu_count(), "python": platform.python_version(), "threads": threads,
                        "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None},
            "rows": rows}


def table(result: dict) -> str:
    head = ("depth", "blocks", "build s", "init s", "bare s (cpu)", "diagnostics s (cpu)", "peak MB bare/diag",
            "stage factors")
    lines = []
    for r in result["rows"]:
        if "error" in r:
            lines.append((str(r["depth"]), "-", "-", "-", "-", f"failed: {r['error']}", "-", "-"))
            continue
        lines.append((str(r["depth"]), str(r["blocks"]), f"{r['build_s']:.1f}", f"{r['init_s']:.1f}",
                      f"{r['bare_s']:.1f} ({r['bare_cpu_s']:.1f})", f"{r['diag_s']:.1f} ({r['diag_cpu_s']:.1f})",
                      f"{r['bare_peak_mb']:.0f}/{r['diag_peak_mb']:.0f}",
                      " ".join(f"{f:.2f}" for f in r["stage_factors"])))
    widths = [max(len(row[i]) for row in (head, *lines)) for i in range(len(head))]
    fmt = lambda row: "  ".join(c.rjust(w) for c, w in zip(row, widths))  # noqa: E731
    m = result["machine"]
    first = result["rows"][0]
    notes = [f"WN WRN-d-{first['k']}, proposed, batch {first['batch']} x 3x{first['size']}x{first['size']}, "
             f"{m['threads']} torch threads, {m['cpu_count']} CPUs, load average {m['load_average']:.1f}",
             f"target for the 10,000-layer net: diagnostics < {TARGET_S:.0f} s and peak < {TARGET_GB:.0f} GB; "
             "stage factors: per-position forward ratio at the end of stage 1 and of stages 2, 3 over their start "
             "(docs/method.md §3.4: sqrt(2)..sqrt(e) = 1.41..1.65)"]
    return "\n".join(["bench_diagnostics: propagation() on deep WN Wide ResNets", fmt(head),
                      "  ".join("-" * w for w in widths), *map(fmt, lines), *notes])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="depths 100 and 1000 instead of 1000 and 10000")
    parser.add_argument("--out", default="wninit-out/bench", help="folder for the JSON (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: min(2, CPUs))")
    parser.add_argument("--batch", type=int, default=4, help="images (default 4)")
    parser.add_argument("--size", type=int, default=32, help="image side (default 32, CIFAR's)")
    args = parser.parse_args(argv)
    result = run(args.quick, threads=args.threads, batch=args.batch, size=args.size)
    print(table(result))
    print(f"wrote {write_json(args.out, 'bench_diagnostics', result)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
