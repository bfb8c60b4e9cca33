"""Sweep throughput: runs per hour on the ``fig2_mlp_depth`` quick grid, this suite vs the reference's way.

The same runs, on the same machine, one variant after the other in one invocation:

- ``reference``: what running the official code over a grid costs (docs/method.md §6.1). One new Python process per
  run (interpreter + imports + data set-up each time), two at a time with one torch thread each (the same
  use of the 2 cores as the sweep); a per-sample ``Dataset`` (PIL image -> ToTensor -> Normalize for every
  sample) behind a ``DataLoader`` with ``num_workers=0``; the legacy ``torch.nn.utils.weight_norm``; an
  ``assert not isnan(loss)`` and ``.item()`` bookkeeping at every step; validation through a DataLoader;
  ``torch.save`` of model + optimizer every epoch (plus a copy of the best); a CSV row per epoch; the best
  checkpoint reloaded for the test pass.
- ``sweep``: ``wninit sweep`` (:func:`wninit.suite.sweep.run_sweep`), local pool of 2 reused workers.
- ``sweep --batch-runs``: the same, with runs that share an MLP trained as one stacked model.

Where the time goes: the reference children time their phases (interpreter start, imports, data set-up,
data pipeline, compute, evaluation, checkpoints); the sweep's time splits into time inside runs (the sum
of the runs' own wall times over the workers) and the rest (worker start, claims, store writes, idle).
Each variant runs twice in the mirrored order A B C C B A, so that a machine load drifting during the
benchmark falls on all alike. ``--quick`` takes a fixed slice (depths 2 and 10, seed 1: 24 runs); the full grid is 120 runs.

Run: ``python -m wninit.suite.bench.sweep [--quick] [--one-pass] [--out DIR]``; ``run(quick, passes) -> dict``.
"""
import time  # first, so that a reference child can time its own imports

_STARTED = time.time()

import json  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402
from pathlib import Path  # noqa: E402

WORKERS = 2
# Runs per hour at least 5x the reference's way of running a grid: what makes the suite's sweeps (hundreds
# of small runs) an afternoon on a laptop instead of a day.
TARGET = 5.0
PHASES = ("interpreter", "imports", "data_setup", "data_pipeline", "compute", "evaluation", "checkpoint")


def spec() -> Path:
    """The spec whose quick grid is timed: the first one `wninit reproduce` runs (Fig. 2's MLP depth sweep)."""
    from wninit.suite.experiments import experiment, reproduced_at

    return experiment(reproduced_at("quick")[0]).path


def grid(quick: bool):
    from wninit.suite.sweep import load_spec

    runs = load_spec(spec(), "quick").runs
    if quick:  # a fixed slice: the cheapest and a middle depth, one seed
        runs = [c for c in runs if c.depth in (2, 10) and c.seed == 1]
    return runs


# -- the reference-style run (a child process) ------------------------------------------------------------
def reference_run(cfg_json: str, workdir: str, spawned_at: float) -> dict:
    """One run the way the official train.py does it; returns its result and phase times (seconds)."""
    t = {"interpreter": _STARTED - spawned_at}
    t0 = time.time()
    import csv
    import shutil

    import numpy as np
    import torch
    import torch.nn.functional as F
    from PIL import Image

    from wninit import initialize
    from wninit.suite.data.sources import _fixed_test_split, _mnist5k, data_root
    from wninit.models import build_model
    from wninit.suite.train import RunConfig
    t["imports"] = time.time() - t0
    torch.set_num_threads(1)
    cfg = RunConfig.from_json(cfg_json)

    class PerSampleMNIST(torch.utils.data.Dataset):  # torchvision.datasets.MNIST + ToTensor + Normalize
        def __init__(self, images, labels):
            self.images, self.labels = images, labels

        def __len__(self):
            return len(self.labels)

        def __getitem__(self, i):
            img = Image.fromarray(self.images[i], mode="L")
            x = torch.from_numpy(np.array(img, dtype=np.uint8)).float().div(255).unsqueeze(0)
            return (x - 0.5) / 1.0, int(self.labels[i])

    t0 = time.time()
    torch.manual_seed(cfg.seed)  # the reference's set_seed, then random_split
    x, y = _mnist5k(data_root())
    xtr, ytr, xte, yte = _fixed_test_split(x[:, 0], y)
    full = PerSampleMNIST(xtr, ytr)
    n_val = int(len(full) * cfg.val_fraction)
    train, val = torch.utils.data.random_split(full, [len(full) - n_val, n_val])
    test = PerSampleMNIST(xte, yte)
    loader = torch.utils.data.DataLoader(train, batch_size=cfg.batch_size, shuffle=True, num_workers=0)
    model = build_model("mlp", in_shape=(1, 28, 28), num_classes=10, depth=cfg.depth, width=cfg.width,
                        norm="wn", wn_api="legacy")
    first_x, _ = next(iter(loader))
    initialize(model, cfg.scheme, direction=cfg.direction, batch=first_x if cfg.scheme == "datadep" else None)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    t["data_setup"] = time.time() - t0
    t.update(data_pipeline=0.0, compute=0.0, evaluation=0.0, checkpoint=0.0)

    def evaluate(ds):
        model.eval()
        correct = 0
        with torch.no_grad():
            for xb, yb in torch.utils.data.DataLoader(ds, batch_size=cfg.batch_size, num_workers=0):
                correct += (model(xb).argmax(1) == yb).sum().item()
        model.train()
        return correct / len(ds)

    best, status, out = -1.0, "completed", Path(workdir)
    with open(out / "log.csv", "w", newline="") as f:
        log = csv.writer(f)
        for epoch in range(cfg.epochs):
            loss_sum, correct, seen, t_data = 0.0, 0, 0, time.time()
            try:
                for xb, yb in loader:
                    t_step = time.time()
                    t["data_pipeline"] += t_step - t_data
                    logits = model(xb)
                    loss = F.cross_entropy(logits, yb)
                    assert not torch.isnan(loss)
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    loss_sum += loss.item()
                    correct += (logits.argmax(1) == yb).sum().item()
                    seen += len(yb)
                    t_data = time.time()
                    t["compute"] += t_data - t_step
            except AssertionError:
                status = "diverged"
                break
            t0 = time.time()
            val_acc = evaluate(val)
            t["evaluation"] += time.time() - t0
            t0 = time.time()
            torch.save({"epoch": epoch, "model": model.state_dict(), "optimizer": opt.state_dict()}, out / "ckpt.pt")
            if val_acc > best:
                best = val_acc
                shutil.copyfile(out / "ckpt.pt", out / "best.pt")
            log.writerow([epoch, loss_sum, correct / max(seen, 1), val_acc, cfg.lr])
            f.flush()
            t["checkpoint"] += time.time() - t0
    t0 = time.time()
    test_acc = None
    if (out / "best.pt").exists():
        model.load_state_dict(torch.load(out / "best.pt")["model"])
        test_acc = evaluate(test)
    t["evaluation"] += time.time() - t0
    return {"status": status, "test_acc": test_acc, "phases": t}


def _reference(runs) -> dict:
    def one(cfg):
        with tempfile.TemporaryDirectory() as d:
            spawned = time.time()
            proc = subprocess.run([sys.executable, "-m", __spec__.name, "--reference-run", cfg.to_json(), "--dir", d,
                                   "--spawned-at", repr(spawned)], capture_output=True, text=True, timeout=3600)
            if proc.returncode:
                raise RuntimeError(f"reference run failed: {proc.stderr[-2000:]}")
            res = json.loads(proc.stdout.strip().splitlines()[-1])
            res["process_s"] = time.time() - spawned
            return res

    start = time.perf_counter()
    with ThreadPoolExecutor(WORKERS) as pool:
        results = list(pool.map(one, runs))
    wall = time.perf_counter() - start
    phases = {p: sum(r["phases"][p] for r in results) for p in PHASES}
    phases["other (process exit, results)"] = sum(r["process_s"] for r in results) - sum(phases.values())
    return {"wall_s": wall, "runs": len(results), "phases_s": phases,
            "diverged": sum(r["status"] == "diverged" for r in results)}


def _sweep(runs, batch_runs: bool) -> dict:
    from wninit.suite.sweep import Store, run_sweep

    with tempfile.TemporaryDirectory() as d:
        store = Store(Path(d) / "bench.db")
        store.add("bench", "quick", runs)
        start = time.perf_counter()
        summary = run_sweep(store, [("bench", "quick")], workers=WORKERS, batch_runs=batch_runs, progress=False)
        wall = time.perf_counter() - start
        recs = store.runs()
        store.close()
    in_runs = sum(r.wall_s or 0.0 for r in recs)
    assert summary.executed == len(runs), summary
    return {"wall_s": wall, "runs": len(runs), "diverged": sum(r.status == "diverged" for r in recs),
            "phases_s": {"inside runs (sum of run wall times)": in_runs,
                         "outside runs (worker start, claims, store, idle; x workers)": WORKERS * wall - in_runs}}


def run(quick: bool = False, passes: int = 2) -> dict:
    from wninit.suite.bench.common import machine

    runs = grid(quick)
    result = {"benchmark": "sweep", "quick": quick, "machine": machine(), "grid": f"{spec().name} quick" + (" slice (depths 2, 10; seed 1)" if quick else ""),
              "n_runs": len(runs), "workers": WORKERS, "passes": 1 if passes < 2 else 2, "variants": {}}
    variants = {"reference (process per run, per-sample data, checkpoints)": lambda: _reference(runs),
                "sweep (local pool)": lambda: _sweep(runs, False),
                "sweep --batch-runs": lambda: _sweep(runs, True)}
    # mirrored order A B C C B A: a load that drifts linearly during the benchmark (a shared machine)
    # weighs on every variant alike; each variant's numbers are the sums of its two passes. passes=1
    # (A B C) halves the time of the whole grid, about 25 minutes on the 2-core CPU, on an idle machine.
    order = list(variants) + (list(reversed(variants)) if passes > 1 else [])
    for name in order:
        load_before = os.getloadavg()[0]
        v = variants[name]()
        v["load_average"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
        prev = result["variants"].get(name)
        if prev is not None:
            v = {"wall_s": prev["wall_s"] + v["wall_s"], "runs": prev["runs"] + v["runs"],
                 "diverged": prev["diverged"] + v["diverged"], "load_average": prev["load_average"] + v["load_average"],
                 "phases_s": {k: prev["phases_s"][k] + v["phases_s"][k] for k in v["phases_s"]}}
        v["runs_per_hour"] = 3600 * v["runs"] / v["wall_s"]
        result["variants"][name] = v
    ref = next(iter(result["variants"].values()))["runs_per_hour"]
    for v in result["variants"].values():
        v["speedup_vs_reference"] = v["runs_per_hour"] / ref
    result["load_average_after"] = round(os.getloadavg()[0], 2)
    best = max(v["speedup_vs_reference"] for v in result["variants"].values())
    result["check_speedup_at_least_5x"] = best >= TARGET
    return result


def tables(result: dict) -> list:
    """Each variant's wall time, throughput and speed-up; then where each variant's time goes (common.Table)."""
    from wninit.suite.bench.common import Table  # here, not at the top: a reference child times its own imports

    rows = [[name, f"{v['wall_s']:.1f} s", f"{v['runs_per_hour']:.0f}", f"{v['speedup_vs_reference']:.2f}x",
             v["diverged"], " / ".join(f"{a}->{b}" for a, b in zip(v["load_average"][::2], v["load_average"][1::2]))]
            for name, v in result["variants"].items()]
    how = ("each variant twice, order A B C C B A; times are the two passes' sums" if result.get("passes", 2) > 1
           else "each variant once, order A B C")
    best = max(result["variants"].items(), key=lambda kv: kv[1]["speedup_vs_reference"])
    notes = [f"target >= {TARGET:g}x the reference: {'met' if result['check_speedup_at_least_5x'] else 'NOT met'}"
             f" (best: {best[0]}, {best[1]['speedup_vs_reference']:.2f}x)"]
    out = [Table(f"Sweep throughput: {result['n_runs']} runs of {result['grid']}, {result['workers']} at a time ({how})",
                 ["variant", "wall", "runs/hour", "speedup", "diverged", "load avg"], rows, notes)]
    rows = []
    for name, v in result["variants"].items():
        total = sum(max(s, 0.0) for s in v["phases_s"].values())
        rows += [[name, k, f"{s:.1f} s", f"{100 * max(s, 0.0) / total:.0f}%"] for k, s in v["phases_s"].items()]
    out.append(Table("Where each variant's time goes", ["variant", "phase", "time", "share"], rows))
    return out


def table(result: dict) -> str:
    from wninit.suite.bench.common import report

    return report(tables(result), result)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--reference-run":  # a child: one reference-style run, its result as JSON
        cfg_json, workdir, spawned = argv[1], argv[3], float(argv[5])
        print(json.dumps(reference_run(cfg_json, workdir, spawned)))
        return 0
    passes = 2
    if "--one-pass" in argv:  # the whole grid in about 25 minutes instead of 50 (see run)
        argv, passes = [a for a in argv if a != "--one-pass"], 1
    from wninit.suite.bench.common import main as bench_main

    return bench_main(lambda quick: run(quick, passes), table, "bench_sweep",
                      "Sweep throughput vs a reference-style loop (--one-pass: each variant once).", argv)


if __name__ == "__main__":
    sys.exit(main())
