"""Training speed: one SGD step of the suite's models, and ``fit``'s epoch against a minimal hand-written loop.

Side by side in one process, batch 128:

- ``step``: forward + backward + SGD(momentum) update of the WN MLP (width 128/512, depth 10/50, MNIST
  input 784) and the WN CNN (width 128, depth 5, CIFAR input 3x32x32; depth 25 too without --quick),
  initialized with ``proposed``;
- ``epoch``: on the embedded real MNIST (mnist5k, 3,600 training images), one epoch of
  :func:`wninit.suite.train.fit` (per-iteration lr, on-device loss/accuracy sums, a finiteness check per
  step, validation) measured between its ``on_epoch`` calls, with and without a run directory
  (checkpoint + CSV every epoch), against the same model trained by a bare loop (``randperm``,
  forward, backward, step) with and without the same validation pass. The ratio is fit's overhead.

Times are medians of repeats; process CPU time is reported too, since it is robust to other processes
on a shared machine. Run: ``python -m wninit.suite.bench.step [--quick] [--out DIR] [--device cuda]``;
``run(quick) -> dict`` is what ``wninit bench`` calls.
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import torch
import torch.nn.functional as F

from wninit.suite.bench.common import machine, sync, timed, write_json

BATCH = 128


def _median(pairs) -> tuple[float, float]:
    return statistics.median(p[0] for p in pairs), statistics.median(p[1] for p in pairs)


def _model(arch, depth, width, in_shape, device):
    from wninit import initialize
    from wninit.models import build_model

    torch.manual_seed(0)
    model = build_model(arch, in_shape=in_shape, num_classes=10, depth=depth, width=width, norm="wn").to(device)
    initialize(model, "proposed", generator=torch.Generator(device).manual_seed(0))
    return model


def step_seconds(arch, depth, width, in_shape, device, repeats) -> tuple[float, float]:
    """Median (wall, CPU) seconds of one SGD step at batch 128."""
    model = _model(arch, depth, width, in_shape, device)
    opt = torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.9)
    x = torch.randn(BATCH, *in_shape, device=device)
    y = torch.randint(0, 10, (BATCH,), device=device)

    def step():
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(3):  # warm-up
        step()
    return _median([timed(step, device) for _ in range(repeats)])


def _bare_epoch(model, opt, x, y, gen):
    model.train()
    order = torch.randperm(len(y), device=x.device, generator=gen)
    for i in range(0, len(y), BATCH):
        idx = order[i:i + BATCH]
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


@torch.inference_mode()
def _bare_eval(model, x, y):
    model.eval()
    return (model(x).argmax(1) == y).float().mean().item()


def epoch_seconds(arch, depth, width, device, epochs) -> dict:
    """fit's epoch (with and without a run directory) vs a bare loop, median (wall, CPU) seconds."""
    from wninit.suite.data import load_dataset
    from wninit.suite.train import RunConfig, fit

    cfg = RunConfig(dataset="mnist5k", arch=arch, depth=depth, width=width, lr=0.001, momentum=0.9,
                    epochs=epochs, device=str(device))
    out = {}
    for name, out_dir in (("fit", None), ("fit_with_checkpoint", "tmp")):
        stamps = []

        def mark(_row):
            sync(device)
            stamps.append((time.perf_counter(), time.process_time()))

        with tempfile.TemporaryDirectory() as tmp:
            sync(device)
            stamps.append((time.perf_counter(), time.process_time()))
            fit(cfg, out_dir=tmp if out_dir else None, on_epoch=mark)
        deltas = [(b[0] - a[0], b[1] - a[1]) for a, b in zip(stamps[1:], stamps[2:])]  # epoch 0 warms up
        out[name] = _median(deltas)

    data = load_dataset("mnist5k", seed=cfg.seed)
    x, y = data.train.x.to(device), data.train.y.to(device)
    vx, vy = data.val.x.to(device), data.val.y.to(device)
    model = _model(arch, depth, width, data.in_shape, device)
    opt = torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.9)
    gen = torch.Generator(device).manual_seed(0)
    _bare_epoch(model, opt, x, y, gen)  # warm-up
    out["bare_loop"] = _median([timed(lambda: _bare_epoch(model, opt, x, y, gen), device) for _ in range(epochs - 1)])
    out["bare_loop_with_eval"] = _median([timed(lambda: (_bare_epoch(model, opt, x, y, gen), _bare_eval(model, vx, vy)),
                                                 device) for _ in range(epochs - 1)])
    out["overhead"] = out["fit"][0] / out["bare_loop_with_eval"][0] - 1
    out["overhead_cpu"] = out["fit"][1] / out["bare_loop_with_eval"][1] - 1
    out["steps_per_epoch"] = -(-len(y) // BATCH)
    return out


def run(quick: bool = False, device: str | None = None, repeats: int | None = None, threads: int | None = 1) -> dict:
    """The benchmark; ``threads`` torch threads during it (1 by default: on a shared CPU extra OpenMP
    threads mostly spin), restored afterwards."""
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        return _run(quick, torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu")),
                    repeats or (10 if quick else 30))
    finally:
        torch.set_num_threads(before)


def _run(quick: bool, device: torch.device, repeats: int) -> dict:
    models = [("mlp", d, w, (1, 28, 28)) for w in (128, 512) for d in (10, 50)]
    models += [("cnn", 5, 128, (3, 32, 32))] + ([] if quick else [("cnn", 25, 128, (3, 32, 32))])
    steps = {f"{a}-w{w}-d{d}": step_seconds(a, d, w, shape, device, repeats) for a, d, w, shape in models}
    epochs = {"mlp-w128-d20": epoch_seconds("mlp", 20, 128, device, 4 if quick else 6)}
    if not quick:
        epochs["cnn-w32-d5"] = epoch_seconds("cnn", 5, 32, device, 4)
    return {
        "benchmark": "step", "quick": quick, "device": str(device), "batch_size": BATCH, "repeats": repeats,
        "torch": torch.__version__, "threads": torch.get_num_threads(),
        "machine": (torch.cuda.get_device_name(device) if device.type == "cuda" else machine()["cpu"]),
        "load_average": os.getloadavg()[0], "cpu_count": os.cpu_count(),
        "step_ms": {k: v[0] * 1e3 for k, v in steps.items()},
        "step_cpu_ms": {k: v[1] * 1e3 for k, v in steps.items()},
        "epoch": {k: {n: (list(v) if isinstance(v, tuple) else v) for n, v in e.items()} for k, e in epochs.items()},
    }


def table(result: dict) -> str:
    lines = [f"one SGD step at batch {result['batch_size']}, device {result['device']} ({result['machine']}), "
             f"median of {result['repeats']}; {result['threads']} torch threads, load average "
             f"{result['load_average']:.1f} on {result['cpu_count']} CPUs",
             f"{'model':<18}{'ms/step':>10}{'CPU ms/step':>14}"]
    for k, ms in result["step_ms"].items():
        lines.append(f"{k:<18}{ms:>10.2f}{result['step_cpu_ms'][k]:>14.2f}")
    lines.append(f"one epoch on mnist5k ({'seconds'}; wall / CPU)")
    names = ("fit", "fit_with_checkpoint", "bare_loop", "bare_loop_with_eval")
    lines.append(f"{'model':<18}" + "".join(f"{n:>24}" for n in names) + f"{'fit overhead':>16}")
    for k, e in result["epoch"].items():
        cells = "".join(f"{e[n][0]:>12.3f} / {e[n][1]:<9.3f}" for n in names)
        lines.append(f"{k:<18}{cells}{100 * e['overhead']:>9.1f}% wall, {100 * e['overhead_cpu']:.1f}% CPU")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and models")
    parser.add_argument("--out", default="wninit-out/bench", help="folder for bench_step.json")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    args = parser.parse_args(argv)
    result = run(args.quick, args.device, args.repeats, args.threads)
    print(table(result))
    print(f"wrote {write_json(args.out, 'bench_step', result)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
