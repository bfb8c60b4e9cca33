"""Data path speed: the on-device batched Loader vs the reference's per-sample pipeline (spec §6.1).

On CIFAR-shaped synthetic data (50,000 x 3x32x32, 10,000 with --quick), side by side in one process:

- ``loader``: :class:`wninit.data.Loader` with crop 4 + flip + cutout 16, batches of 128;
- ``per_sample``: a ``torch.utils.data.DataLoader`` (num_workers=0, as the reference) over a Dataset
  whose ``__getitem__`` pads/crops, flips, converts, normalizes and cuts out one uint8 image with torch
  ops, in the reference's order (RandomCrop, RandomHorizontalFlip, ToTensor, Normalize, Cutout);
- one SGD step (forward, backward, update) of the suite's WN MLP(3072,128,10,10) and CNN(3,128,5,10)
  at batch 128, to state the data path's share of a training step: t_batch / (t_batch + t_step).

Each time is the median of repeats. Run: ``python benchmarks/bench_data.py [--quick] [--out DIR]
[--device cuda]``; ``run(quick) -> dict`` is what ``wninit bench`` calls.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import torch

from wninit.data import CIFAR_MEAN_STD, Loader, load_dataset

BATCH = 128


class PerSampleCifar(torch.utils.data.Dataset):
    """The reference's per-image train transforms, with torch ops on one uint8 (3, 32, 32) image."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, crop=4, cutout=16):
        self.images, self.labels, self.crop, self.cutout = images, labels, crop, cutout
        self.mean = torch.tensor(CIFAR_MEAN_STD[0]).view(3, 1, 1)
        self.std = torch.tensor(CIFAR_MEAN_STD[1]).view(3, 1, 1)

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        img, p = self.images[i], self.crop
        padded = torch.nn.functional.pad(img, (p, p, p, p))  # RandomCrop(32, padding=4): black padding
        top, left = (int(v) for v in torch.randint(0, 2 * p + 1, (2,)))
        img = padded[:, top:top + 32, left:left + 32]
        if torch.rand(()) < 0.5:  # RandomHorizontalFlip
            img = img.flip(2)
        img = (img.float() / 255 - self.mean) / self.std  # ToTensor, Normalize
        cy, cx, half = int(torch.randint(0, 32, ())), int(torch.randint(0, 32, ())), self.cutout // 2
        img[:, max(cy - half, 0):min(cy + half, 32), max(cx - half, 0):min(cx + half, 32)] = 0  # Cutout
        return img, self.labels[i]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _epoch_seconds(batches, device) -> tuple[float, float]:
    """(wall, process CPU) seconds of one pass; CPU time is robust to other processes on the machine."""
    _sync(device)
    start, cpu = time.perf_counter(), time.process_time()
    for x, y in batches:
        if x.device != device:
            x, y = x.to(device), y.to(device)
    _sync(device)
    return time.perf_counter() - start, time.process_time() - cpu


def _median_per_image(batches, device, repeats: int, n: int) -> tuple[float, float]:
    times = [_epoch_seconds(batches, device) for _ in range(repeats)]
    return statistics.median(t[0] for t in times) / n, statistics.median(t[1] for t in times) / n


def _step_seconds(model, device, repeats: int) -> float:
    model.to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(BATCH, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (BATCH,), device=device)
    times = []
    for i in range(repeats + 3):  # 3 warm-up steps
        _sync(device)
        start = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        _sync(device)
        if i >= 3:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def run(quick: bool = False, device: str | None = None, repeats: int = 3, threads: int | None = 1) -> dict:
    """The benchmark; ``threads`` torch threads during it (1 by default: the per-sample pipeline cannot
    use more, and a busy machine makes OpenMP threads spin), restored afterwards."""
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        return _run(quick, device, repeats)
    finally:
        torch.set_num_threads(before)


def _run(quick: bool, device: str | None, repeats: int) -> dict:
    from wninit import initialize
    from wninit.models import CNN, MLP

    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    n = 10_000 if quick else 50_000
    ds = load_dataset("synthetic", synthetic_shape=(3, 32, 32), synthetic_size=n, val_fraction=0.0)
    g = torch.Generator(device).manual_seed(0)
    loader = Loader(ds.train, BATCH, crop=4, flip=True, cutout=16, generator=g, device=device)
    _epoch_seconds(loader, device)  # warm-up: allocator, kernels
    ours, ours_cpu = _median_per_image(loader, device, repeats, n)

    raw = ((torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 256).to(torch.uint8))
    per_sample = torch.utils.data.DataLoader(PerSampleCifar(raw, ds.train.y), batch_size=BATCH, shuffle=True,
                                             num_workers=0)
    theirs, theirs_cpu = _median_per_image(per_sample, device, repeats, n)

    steps = {}
    for name, model in (("mlp", MLP(3072, 128, 10, 10)), ("cnn", CNN(3, 128, 5, 10))):
        initialize(model, "proposed")
        steps[name] = _step_seconds(model, device, 10 if quick else 30)
    batch = ours * BATCH
    return {
        "benchmark": "data", "quick": quick, "device": str(device), "images": n, "batch_size": BATCH,
        "repeats": repeats, "torch": torch.__version__, "threads": torch.get_num_threads(),
        "machine": (torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
                    or platform.machine()),
        "load_average": os.getloadavg()[0], "cpu_count": os.cpu_count(),
        "loader_us_per_image": ours * 1e6, "per_sample_us_per_image": theirs * 1e6, "speedup": theirs / ours,
        "loader_cpu_us_per_image": ours_cpu * 1e6, "per_sample_cpu_us_per_image": theirs_cpu * 1e6,
        "speedup_cpu_time": theirs_cpu / ours_cpu,
        "step_ms": {k: v * 1e3 for k, v in steps.items()},
        "data_share_of_step": {k: batch / (batch + v) for k, v in steps.items()},
        "per_sample_share_of_step": {k: theirs * BATCH / (theirs * BATCH + v) for k, v in steps.items()},
    }


def table(result: dict) -> str:
    lines = [f"data path on {result['images']} CIFAR-shaped images, batch {result['batch_size']}, "
             f"device {result['device']} ({result['machine']}), median of {result['repeats']}",
             f"({result['threads']} torch threads, load average {result['load_average']:.1f} on "
             f"{result['cpu_count']} CPUs)",
             f"{'pipeline':<34}{'us/image':>12}{'ms/batch':>12}{'CPU us/image':>14}",
             f"{'Loader (batched crop+flip+cutout)':<34}{result['loader_us_per_image']:>12.2f}"
             f"{result['loader_us_per_image'] * BATCH / 1e3:>12.3f}{result['loader_cpu_us_per_image']:>14.2f}",
             f"{'per-sample DataLoader (reference)':<34}{result['per_sample_us_per_image']:>12.2f}"
             f"{result['per_sample_us_per_image'] * BATCH / 1e3:>12.3f}{result['per_sample_cpu_us_per_image']:>14.2f}",
             f"speed-up {result['speedup']:.1f}x wall, {result['speedup_cpu_time']:.1f}x CPU time (target >= 50x)",
             f"{'model step':<34}{'ms/step':>12}{'Loader share':>14}{'per-sample share':>18}"]
    for k, ms in result["step_ms"].items():
        lines.append(f"{k:<34}{ms:>12.2f}{100 * result['data_share_of_step'][k]:>13.2f}%"
                     f"{100 * result['per_sample_share_of_step'][k]:>17.1f}%")
    lines.append("target: Loader share < 5%")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10,000 images instead of 50,000")
    parser.add_argument("--out", default="wninit-out/bench", help="folder for bench_data.json")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    args = parser.parse_args(argv)
    result = run(args.quick, args.device, args.repeats, args.threads)
    print(table(result))
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "bench_data.json")
    with open(path, "w") as f:
        json.dump(result, f, indent=2)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
