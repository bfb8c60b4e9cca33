"""Shared timing for wninit's benchmarks: variants interleaved in one process, repeated, median and spread.

Every benchmark here follows one protocol, so that a ratio between two variants means something on a
shared, noisy machine:

- all variants are built first, then timed in rounds; each round runs every variant once, in an order
  rotated from round to round, so that drift (thermal, other processes) falls on all of them alike;
- a variant's time is the median over rounds, its spread the interquartile range over the median;
- ratios are taken between medians of the same run, never across runs or machines;
- the machine (CPU, cores, torch version and threads, device, load average) and the date are written
  with the numbers, under the result's ``"machine"`` key (:func:`machine`).

A benchmark module exposes ``run(quick: bool) -> dict`` (JSON-able, ``"benchmark"`` naming it),
``tables(result) -> list[Table]`` and ``table(result) -> str`` (the same tables as text);
``python -m wninit.suite.bench.X [--quick] [--out DIR]`` prints the table and writes ``DIR/bench_X.json``,
``wninit bench`` does the same for all of them, and ``benchmarks/render_docs.py`` renders the JSONs of
``docs/bench/`` into docs/performance.md as markdown.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import time
from contextlib import contextmanager
from typing import Callable, NamedTuple

import torch

from wninit.errors import UserError

__all__ = ["machine", "busy_note", "num_threads", "time_interleaved", "summary", "fmt_seconds", "format_table",
           "Table", "text", "report", "machine_line", "sync", "timed", "thread_counts", "write_json", "main", "VARIANTS", "build_variant"]

# A layer variant -> (norm, wn_api) of the suite's models: the comparisons bench/wn.py and bench/gpu.py make.
VARIANTS = {"plain": ("none", "wninit"), "bn": ("bn", "wninit"), "torch": ("wn", "torch"), "wninit": ("wn", "wninit")}


def build_variant(kind: str, size: tuple[int, int] | None, variant: str) -> torch.nn.Module:
    """The suite's ``"mlp"`` (784 -> width x depth -> 10, ``size=(width, depth)``), ``"cnn"``
    (CNN(3,128,5,10)) or ``"wrn"`` (WRN-depth-k on 3x32x32, ``size=(depth, k)``) in one of
    :data:`VARIANTS`, seeded, initialized as a user would: WN by ``"proposed"``, plain and BN by ``"he"``."""
    from wninit import initialize
    from wninit.models import CNN, MLP, WideResNet

    norm, api = VARIANTS[variant]
    torch.manual_seed(0)
    if kind == "mlp":
        model = MLP(784, size[0], size[1], 10, norm, api)
    elif kind == "cnn":
        model = CNN(3, 128, 5, 10, norm, api)
    else:
        model = WideResNet(size[0], size[1], 10, 3, norm, api)
    initialize(model, "proposed" if norm == "wn" else "he", generator=torch.Generator().manual_seed(0))
    return model


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(device: str = "cpu") -> dict:
    """What the numbers were measured on, and when (UTC); the load average says how busy the machine was."""
    card = torch.cuda.get_device_name(device) if str(device).startswith("cuda") else None
    return {
        "cpu": _cpu_name(), "cpu_count": os.cpu_count(), "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
        "device": str(device), **({"card": card} if card else {}),
        "load_average": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def machine_line(result: dict) -> str:
    """The machine and date of a result in one line, the load average before -> after when both were taken."""
    m = result["machine"]
    after = result.get("load_average_after", m.get("load_average_end"))
    load = f"{m['load_average']}" + (f" -> {after}" if after is not None else "")
    device, card = m.get("device", result.get("device", "cpu")), m.get("card", result.get("card"))
    where = f"{device} ({card})" if card else device
    threads = result.get("threads")
    threads = (f"measured at {' and '.join(map(str, threads)) if isinstance(threads, list) else threads} torch "
               "thread(s)" if threads is not None else f"{m['torch_threads']} torch threads by default")
    return (f"{m.get('date', 'date not recorded')}: {where}, CPU {m['cpu']} x {m['cpu_count']}, torch {m['torch']}, "
            f"{threads}, load average {load}")


def busy_note(load_before: float | None, load_after: float | None) -> str:
    """A warning line when other work shared the machine (1-min load average above its CPU count)."""
    loads = [x for x in (load_before, load_after) if x is not None]
    cpus = os.cpu_count() or 1
    if loads and max(loads) > cpus:
        return (f"WARNING: load average {max(loads):.1f} on {cpus} CPUs: other processes shared the machine, "
                "timings (multi-threaded ones most) are unreliable; rerun on an idle machine")
    return ""


def sync(device: torch.device) -> None:
    """Wait for the device's queued work, so that a clock read after it counts that work (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device) -> tuple[float, float]:
    """(wall, process CPU) seconds of one call of `fn`, the device's work included."""
    sync(device)
    start, cpu = time.perf_counter(), time.process_time()
    fn()
    sync(device)
    return time.perf_counter() - start, time.process_time() - cpu


@contextmanager
def num_threads(n: int):
    """Run the block with ``n`` torch intra-op threads, then restore the previous count."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def time_interleaved(variants: dict[str, Callable[[], object]], rounds: int, *, number: int = 1,
                     warmup: int = 1, budget_s: float | None = None,
                     cpu: dict[str, list[float]] | None = None) -> dict[str, list[float]]:
    """Wall seconds per call of each variant, one sample per round, the variants' order rotated each round.

    Args:
        variants: name -> a call that does one unit of work (a training step, an init).
        rounds: samples per variant.
        number: calls per sample (for calls too short to time one by one).
        warmup: untimed calls of each variant first (allocator, lazy init, caches).
        budget_s: stop after the round in which this much time has gone (at least 3 rounds).
        cpu: if given, filled with the process CPU seconds per call of each variant, alongside: on a
            busy machine CPU time is the steadier measure of one thread's work (it still counts cache
            misses others cause, and with several threads it counts their spin-waits).
    """
    names = list(variants)
    for name in names:
        for _ in range(warmup):
            variants[name]()
    samples: dict[str, list[float]] = {name: [] for name in names}
    start = time.perf_counter()
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            call = variants[name]
            c0, t0 = time.process_time(), time.perf_counter()
            for _ in range(number):
                call()
            samples[name].append((time.perf_counter() - t0) / number)
            if cpu is not None:
                cpu.setdefault(name, []).append((time.process_time() - c0) / number)
        if budget_s is not None and r >= 2 and time.perf_counter() - start > budget_s:
            break
    return samples


def summary(samples: list[float]) -> dict:
    """Median, quartiles and relative spread (IQR / median) of one variant's samples."""
    xs = sorted(samples)
    med = statistics.median(xs)
    if len(xs) >= 4:
        q1, _, q3 = statistics.quantiles(xs, n=4)
    else:
        q1, q3 = xs[0], xs[-1]
    return {"median": med, "q1": q1, "q3": q3, "spread": (q3 - q1) / med if med else 0.0, "min": xs[0],
            "n": len(xs)}


def fmt_seconds(s: float) -> str:
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.2f} ms"
    return f"{s * 1e6:.1f} us"


class Table(NamedTuple):
    """One table of a benchmark's result: what ``table`` prints and what docs/performance.md shows."""
    title: str
    columns: list[str]
    rows: list[list]
    notes: list[str] = []


def report(tables: list[Table], result: dict) -> str:
    """A benchmark's `table(result)`: its tables as text under the result's machine line, and the busy-machine
    warning when the load average says other work shared the machine."""
    warning = busy_note(result["machine"]["load_average"], result.get("load_average_after"))
    return text(tables, machine_line(result)) + (f"\n{warning}" if warning else "")


def text(tables: list[Table], head: str = "") -> str:
    """The tables as plain text, one after the other, under an optional head line."""
    return "\n\n".join(([head] if head else []) + [format_table(*t) for t in tables])


def format_table(title: str, columns: list[str], rows: list[list], notes: list[str] = ()) -> str:
    """A plain-text table: the first column left-aligned, the others right-aligned."""
    cells = [[str(c) for c in columns]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]

    def line(r):
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))

    out = [title, line(cells[0]), "  ".join("-" * w for w in widths)] + [line(r) for r in cells[1:]]
    return "\n".join(out + list(notes))


def write_json(out_dir: str, name: str, payload: dict) -> str:
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, f"{name}.json")
    with open(path, "w") as f:
        json.dump(payload, f, indent=2)
    return path


def thread_counts(quick: bool, threads: int | None) -> list[int]:
    """The torch thread counts a benchmark measures: ``threads`` alone if given (on a loaded machine one
    thread is the steadiest), else the machine's core count, and 1 as well unless ``quick``."""
    if threads is not None:
        if threads < 1:
            raise UserError(f"--threads must be at least 1, got {threads}")
        return [threads]
    cores = os.cpu_count() or 1
    return [cores] if quick else sorted({cores, 1}, reverse=True)


def main(run: Callable[..., dict], table: Callable[[dict], str], name: str, description: str,
         argv: list[str] | None = None, threads_flag: bool = False) -> int:
    """The command line of one benchmark file: ``[--quick] [--out DIR]``, and ``[--threads N]`` where
    ``threads_flag`` says that ``run`` takes ``threads``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="fewer sizes and rounds (about a minute)")
    parser.add_argument("--out", default="wninit-out/bench", help="folder for the JSON (default: %(default)s)")
    if threads_flag:
        parser.add_argument("--threads", type=int, default=None, metavar="N",
                            help="measure at N torch threads only (default: the core count, and 1 unless --quick)")
    args = parser.parse_args(argv)
    if threads_flag and args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be at least 1, got {args.threads}")
    result = run(args.quick, threads=args.threads) if threads_flag else run(args.quick)
    print(table(result))
    print(f"wrote {write_json(args.out, name, result)}")
    return 0
