"""Data path speed: wninit's batched Loader vs per-sample pipelines, as the suite uses them (docs/method.md §6.1).

Side by side in one process, batch 128, on random uint8 images of the real shapes split as
``load_dataset`` splits real ones (uint8 ``raw`` kept beside the normalized float32 ``x``):

- ``mnist``: 1x28x28, no augmentation (docs/method.md §6.1), for fig2_mlp_depth's WN MLP(784, 128, 20, 10);
- ``cifar_cf``: 3x32x32, RandomCrop(32, padding=4) + RandomHorizontalFlip, for fig2_cnn_depth's WN
  CNN(3, 128, 5, 10); ``cifar_cfc``: the same + Cutout(16), for the CNN and the MLP(3072, 128, 10, 10).

Pipelines: ``loader`` (:class:`wninit.suite.data.Loader`); ``loader_float``, ``loader_no_reuse``,
``loader_no_table``: the Loader on a float32 split, without reusing released batch memory, without the
Cutout mask table (what each choice is worth); ``pil``: the reference's pipeline, faithfully (torchvision
is not a dependency, so its transforms are written out in reference_pipeline.py with PIL and numpy: same operations, same
order, less torchvision's per-call checks): a CIFAR10-style dataset of uint8 HWC numpy images, per
sample ``Image.fromarray``, RandomCrop (``ImageOps.expand`` + ``crop``), RandomHorizontalFlip
(``transpose``), ToTensor, Normalize, DeVries & Taylor's Cutout (numpy mask multiplied in), then
``DataLoader`` (default_collate, num_workers=0);
``torch_ops``: the same per-sample transforms with torch ops on a uint8 (C, H, W) tensor.

Times per image are medians over rounds; a round runs one epoch of every pipeline, in an order rotated
from round to round (per-sample pipelines on a subset: their cost is per image). Wall and process CPU
time are both given: CPU time is robust to other processes on a shared machine. The data share of a
training step is t_batch / (t_batch + t_step), t_step the median forward + backward + SGD step.

Run: ``python -m wninit.suite.bench.data [--quick] [--out DIR] [--threads N]``; ``run(quick) -> dict``.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch

from wninit.suite.data import CIFAR_MEAN_STD, MNIST_MEAN_STD, Loader, Split
from wninit.suite.data import loader as loader_module
from wninit.suite.data.sources import normalize_raw

from wninit.suite.bench.common import Table, machine, report, sync, timed, write_json
from wninit.suite.bench.reference_pipeline import PilImages, TorchOpsImages, pil_transform

BATCH = 128
# The data path against the reference's per-sample pipeline: at least 50x faster per image, so that a sweep of
# small models is bound by their compute, not by preparing images.
TARGET_SPEEDUP = 50.0
# The data path's share of a training step at most 5%: past that, a faster model would wait for its data.
TARGET_SHARE = 0.05


# ---- data and timing -----------------------------------------------------------------------------

def uint8_split(n: int, shape: tuple, mean_std, seed: int = 0) -> Split:
    """Random uint8 images as ``load_dataset`` makes a split of real ones (sources._assemble)."""
    g = torch.Generator().manual_seed(seed)
    raw = torch.randint(0, 256, (n, *shape), generator=g, dtype=torch.uint8)
    mean, std = (torch.tensor(v, dtype=torch.float32) for v in mean_std)
    return Split(normalize_raw(raw, 255.0, mean, std).contiguous(), torch.randint(0, 10, (n,), generator=g),
                 -mean / std, raw, (255.0, mean, std))


def _epoch(batches, device) -> tuple[float, float]:
    """(wall, process CPU) seconds of one pass, each batch moved to ``device`` as a training loop would."""
    def one_pass():
        for x, y in batches:
            if x.device != device:
                x, y = x.to(device), y.to(device)

    return timed(one_pass, device)


def _interleaved(pipelines: dict, images: dict, device, rounds: int) -> dict:
    """Median (wall, CPU) seconds per image of each pipeline, one epoch each per round, order rotated."""
    names = list(pipelines)
    for name in names:  # warm-up: allocator, lazy buffers and tables
        _epoch(pipelines[name], device)
    samples = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            samples[name].append(_epoch(pipelines[name], device))
    return {name: {"wall_us": statistics.median(s[0] for s in v) / images[name] * 1e6,
                   "cpu_us": statistics.median(s[1] for s in v) / images[name] * 1e6} for name, v in samples.items()}


def _step(model, in_shape, device, repeats: int) -> dict:
    """Median (wall, CPU) seconds of one SGD step at batch 128, as fit runs it."""
    from wninit import initialize
    initialize(model, "proposed")
    model.to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x, y = torch.randn(BATCH, *in_shape, device=device), torch.randint(0, 10, (BATCH,), device=device)
    walls, cpus = [], []
    for i in range(repeats + 2):  # 2 warm-up steps
        sync(device)
        start, cpu = time.perf_counter(), time.process_time()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sync(device)
        if i >= 2:
            walls.append(time.perf_counter() - start)
            cpus.append(time.process_time() - cpu)
    return {"wall_ms": statistics.median(walls) * 1e3, "cpu_ms": statistics.median(cpus) * 1e3}


# ---- the benchmark -------------------------------------------------------------------------------

# name: (image shape, Normalize statistics, crop 4 + flip, cutout side)
CASES = {"mnist": ((1, 28, 28), MNIST_MEAN_STD, False, 0),
         "cifar_cf": ((3, 32, 32), CIFAR_MEAN_STD, True, 0),
         "cifar_cfc": ((3, 32, 32), CIFAR_MEAN_STD, True, 16)}
# (label, data case, model (in_features/in_channels, width, depth, classes)); the first of each kind is
# the suite's: fig2_mlp_depth's MLP on MNIST, fig2_cnn_depth's CNN on CIFAR-10
MODELS = [("MLP(784,128,20,10), MNIST", "mnist", "mlp", (784, 128, 20, 10)),
          ("MLP(784,128,2,10), MNIST", "mnist", "mlp", (784, 128, 2, 10)),
          ("CNN(3,128,5,10), CIFAR crop+flip", "cifar_cf", "cnn", (3, 128, 5, 10)),
          ("CNN(3,128,5,10), CIFAR crop+flip+cutout", "cifar_cfc", "cnn", (3, 128, 5, 10)),
          ("MLP(3072,128,10,10), CIFAR crop+flip+cutout", "cifar_cfc", "mlp", (3072, 128, 10, 10))]


def _loader(split: Split, case: str, device, seed: int = 0, **kw) -> Loader:
    _, _, augment, cutout = CASES[case]
    return Loader(split, BATCH, crop=4 if augment else 0, flip=augment, cutout=cutout,
                  generator=torch.Generator(device).manual_seed(seed), device=device, **kw)


def _without_table(loader: Loader) -> Loader:
    """The loader with Cutout masks built per batch, as :func:`cutout_`, instead of looked up."""
    saved, loader_module.HOLE_TABLE_MAX = loader_module.HOLE_TABLE_MAX, 0
    try:
        next(iter(loader))  # makes the loader's Cutout, here without its table
    finally:
        loader_module.HOLE_TABLE_MAX = saved
    return loader


def _pipelines(case: str, split: Split, n_ps: int, device) -> dict:
    shape, mean_std, augment, cutout = CASES[case]
    loaders = {"loader": _loader(split, case, device)}
    if augment:
        loaders["loader_float"] = _loader(Split(split.x, split.y, split.pad_value), case, device)
    loaders["loader_no_reuse"] = _loader(split, case, device)
    loaders["loader_no_reuse"]._out.keep = 0
    if cutout:
        loaders["loader_no_table"] = _without_table(_loader(split, case, device))
    raw, labels = split.raw[:n_ps], split.y[:n_ps]
    # torchvision's CIFAR10 holds HWC numpy arrays; its MNIST a (N, H, W) tensor, .numpy() per sample
    images = raw.permute(0, 2, 3, 1).numpy() if shape[0] == 3 else raw[:, 0]
    per_sample = {"pil": PilImages(images, labels.tolist(), pil_transform(mean_std, augment, cutout)),
                  "torch_ops": TorchOpsImages(raw, labels, mean_std, augment, cutout)}
    loaders.update({k: torch.utils.data.DataLoader(ds, batch_size=BATCH, shuffle=True, num_workers=0)
                    for k, ds in per_sample.items()})
    return loaders


def _pil_breakdown(split: Split, n: int) -> dict:
    """CPU us per image in each transform of the CIFAR crop+flip+cutout PIL pipeline, and in the rest
    (Dataset indexing, Image.fromarray, sampler, default_collate)."""
    seconds = {}
    ds = PilImages(split.raw[:n].permute(0, 2, 3, 1).numpy(), split.y[:n].tolist(),
                   pil_transform(CIFAR_MEAN_STD, True, 16, seconds))
    cpu = time.process_time()
    for _ in torch.utils.data.DataLoader(ds, batch_size=BATCH, shuffle=True, num_workers=0):
        pass
    total = time.process_time() - cpu
    out = {k: v / n * 1e6 for k, v in seconds.items()}
    out["fromarray+indexing+collate+sampler"] = (total - sum(seconds.values())) / n * 1e6
    return out


def _loader_profile(loader: Loader, n: int, cpu_us: float, epochs: int = 2) -> dict:
    """Each torch op's (and input shape's) share of the loader's profiled time, and that share of its
    measured CPU us per image (the profiler's clock is wall time, inflated alike on a busy machine)."""
    from torch.profiler import ProfilerActivity, profile
    for _ in loader:  # warm-up: the mirrored source, buffers and tables are made on the first batch
        pass
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        for _ in range(epochs):
            for _ in loader:
                pass
    times = {}
    for e in prof.key_averages(group_by_input_shape=True):  # also split by the other inputs: add up
        key = f"{e.key} {e.input_shapes[0] if e.input_shapes else ''}"
        times[key] = times.get(key, 0.0) + e.self_cpu_time_total
    total = sum(times.values())
    ranked = sorted(times.items(), key=lambda kv: -kv[1])
    return {k: {"share": v / total, "cpu_us": v / total * cpu_us} for k, v in ranked}


def run(quick: bool = False, device: str | None = None, repeats: int | None = None, threads: int | None = 1,
        profile: bool = True) -> dict:
    """The benchmark; ``threads`` torch threads during it (1 by default: the per-sample pipelines run in
    one thread with num_workers=0, and the suite runs one thread per worker), restored afterwards."""
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        return _run(quick, device, repeats or (3 if quick else 5), profile)
    finally:
        torch.set_num_threads(before)


def _run(quick: bool, device: str | None, rounds: int, profile: bool) -> dict:
    from wninit.models import CNN, MLP

    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    n, n_ps = (10_000, 1_000) if quick else (50_000, 5_000)
    load_before = [round(v, 1) for v in os.getloadavg()]
    np.random.seed(0)
    torch.manual_seed(0)
    splits = {case: uint8_split(n, CASES[case][0], CASES[case][1]) for case in ("mnist", "cifar_cf")}
    splits["cifar_cfc"] = splits["cifar_cf"]
    data = {}
    for case in CASES:
        pipelines = _pipelines(case, splits[case], n_ps, device)
        images = {k: (n_ps if k in ("pil", "torch_ops") else n) for k in pipelines}
        times = _interleaved(pipelines, images, device, rounds)
        ours = times["loader"]
        data[case] = {"times": times, "speedup": {
            f"{base}_{kind}": times[base][f"{kind}_us"] / ours[f"{kind}_us"]
            for base in ("pil", "torch_ops") for kind in ("wall", "cpu")}}
    steps, shares = {}, {}
    for label, case, kind, args in MODELS:
        key = (kind, args)
        if key not in steps:
            model = MLP(*args) if kind == "mlp" else CNN(*args)
            steps[key] = _step(model, CASES[case][0], device, 5 if quick else 15)
        t = data[case]["times"]["loader"]
        shares[label] = {"case": case, "step_wall_ms": steps[key]["wall_ms"], "step_cpu_ms": steps[key]["cpu_ms"],
                         "batch_wall_ms": t["wall_us"] * BATCH / 1e3, "batch_cpu_ms": t["cpu_us"] * BATCH / 1e3}
        s = shares[label]
        s["share_wall"] = s["batch_wall_ms"] / (s["batch_wall_ms"] + s["step_wall_ms"])
        s["share_cpu"] = s["batch_cpu_ms"] / (s["batch_cpu_ms"] + s["step_cpu_ms"])
    result = {
        "benchmark": "data", "quick": quick, "device": str(device), "images": n, "per_sample_images": n_ps,
        "batch_size": BATCH, "rounds": rounds, "threads": torch.get_num_threads(),
        "machine": {**machine(str(device)), "load_average": load_before[0]},
        "load_average_before": load_before, "data": data, "steps": shares,
        "targets": {"speedup_vs_pil": TARGET_SPEEDUP, "share": TARGET_SHARE},
    }
    if profile:
        result["pil_breakdown_cpu_us"] = _pil_breakdown(splits["cifar_cfc"], n_ps)
        if device.type == "cpu":
            result["loader_profile"] = {case: _loader_profile(_loader(splits[case], case, device), n,
                                                              data[case]["times"]["loader"]["cpu_us"])
                                        for case in ("cifar_cf", "cifar_cfc")}
    result["load_average_after"] = round(os.getloadavg()[0], 2)
    return result


NAMES = {"mnist": "MNIST 1x28x28, no augmentation", "cifar_cf": "CIFAR 3x32x32, crop 4 + flip",
         "cifar_cfc": "CIFAR 3x32x32, crop 4 + flip + cutout 16"}


def tables(result: dict) -> list[Table]:
    """Per case, every pipeline's time per image and the speed-up over PIL; then the data share of a step;
    then the breakdowns when they were profiled."""
    r, pct = result, lambda v: f"{100 * v:.2f}%"  # noqa: E731
    out = []
    for case, d in r["data"].items():
        pil, s = d["times"]["pil"]["cpu_us"], d["speedup"]
        rows = [[k, f"{t['wall_us']:.2f}", f"{t['cpu_us']:.2f}", f"{pil / t['cpu_us']:.1f}x"] for k, t in d["times"].items()]
        met = "met" if min(s["pil_wall"], s["pil_cpu"]) >= TARGET_SPEEDUP else "NOT met"
        notes = [f"Loader: {s['pil_wall']:.1f}x wall, {s['pil_cpu']:.1f}x CPU faster than PIL (target >= "
                 f"{TARGET_SPEEDUP:.0f}x: {met}); {s['torch_ops_wall']:.1f}x, {s['torch_ops_cpu']:.1f}x than torch ops"]
        out.append(Table(f"{NAMES[case]}: batch {r['batch_size']}, median of {r['rounds']} interleaved rounds, Loader "
                         f"on {r['images']} images, per-sample pipelines on {r['per_sample_images']}",
                         ["pipeline", "wall us/img", "CPU us/img", "pil / this (CPU)"], rows, notes))
    rows = [[k, f"{s['step_wall_ms']:.2f}", f"{s['batch_wall_ms']:.3f}", pct(s["share_wall"]), pct(s["share_cpu"])]
            for k, s in r["steps"].items()]
    out.append(Table(f"The data path's share of a training step (target < {100 * TARGET_SHARE:.0f}%)",
                     ["model, data", "step ms", "batch ms", "share wall", "share CPU"], rows))
    if "pil_breakdown_cpu_us" in r:
        out.append(Table("PIL pipeline, CIFAR crop+flip+cutout: CPU us per image", ["step", "CPU us"],
                         [[k, f"{v:.2f}"] for k, v in r["pil_breakdown_cpu_us"].items()]))
    for case, profile in r.get("loader_profile", {}).items():
        out.append(Table(f"Loader, {NAMES[case]}: each op's share of the profiled time (by its first input's shape)",
                         ["op", "share", "CPU us/img"], [[k[:64], f"{100 * v['share']:.1f}%", f"{v['cpu_us']:.3f}"]
                                                         for k, v in profile.items() if v["share"] >= 0.01]))
    return out


def table(result: dict) -> str:
    return report(tables(result), result)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10,000 images (per-sample: 1,000), not 50,000 (5,000)")
    parser.add_argument("--out", default="wninit-out/bench", help="folder for bench_data.json")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    parser.add_argument("--repeats", type=int, default=None, help="interleaved rounds (default 5, --quick 3)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    parser.add_argument("--no-profile", action="store_true", help="skip the per-transform and per-op breakdowns")
    args = parser.parse_args(argv)
    result = run(args.quick, args.device, args.repeats, args.threads, not args.no_profile)
    print(table(result))
    print(f"wrote {write_json(args.out, 'bench_data', result)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
