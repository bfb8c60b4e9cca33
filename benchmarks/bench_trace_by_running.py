"""Tracing by running (docs/method.md §3.9) and measured branch ends (§3.10): what an example input costs.

Printed side by side in one run, each the best of ``--rounds`` interleaved rounds on one torch thread:

1. per zoo model (tests/zoo): one forward pass (eval, no gradients), ``record`` (one forward under the
   recorder), ``discover`` by running and with torch.fx, ``torch.export`` non-strict (the alternative
   docs/method.md §3.9 weighed; nan where it fails), and ``initialize`` with the example input (discovery by
   running, the draws, and one more recorded forward for the measured branch ends); the check: ``record`` costs
   at most ``MAX_FORWARDS`` (3) forward passes;
2. a 10,000-layer WN WRN (depth 10000 = 6N+4, k = 1, 16 channels on 1 x 3 x 8 x 8): ``initialize`` with its
   declared roles, with ``discover=True`` (torch.fx), and with ``discover=True, example_inputs=x`` (by running);
   the check: by running under ``TEN_K_SECONDS`` (15 s).

Run: ``PYTHONPATH=src:tests python benchmarks/bench_trace_by_running.py [--quick] [--rounds 3]``; ``--quick``
uses a 1,000-layer WRN. Timings on a shared machine are indicative: the script prints the load average.
"""
from __future__ import annotations

import argparse
import os
import time
import warnings

import torch

MAX_FORWARDS = 3.0
TEN_K_SECONDS = 15.0


def _best(fn, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def zoo_rows(rounds: int) -> list[tuple]:
    import wninit
    from wninit.structure.record import record
    from wninit.structure.trace import TraceFailure, discover
    from zoo import ALL_ZOO as ZOO

    rows = []
    for name, (build, shape) in ZOO.items():
        torch.manual_seed(0)
        model = build().eval()
        x = torch.randn(shape)

        def forward():
            with torch.no_grad():
                model(x)

        def fx():
            try:
                discover(model)
            except TraceFailure:
                pass

        def export():
            try:
                torch.export.export(model, (x,), strict=False)
            except Exception:  # a model export cannot handle: its time is the time to fail
                failed.add(name)

        failed: set[str] = set()
        forward()  # warm-up: lazy inits and allocator
        times = {k: _best(f, rounds) for k, f in {
            "forward": forward, "record": lambda: record(model, x), "discover, by running": lambda: discover(model, example_inputs=x),
            "discover, fx": fx, "torch.export (non-strict)": export,
            "initialize(example_inputs)": lambda: wninit.initialize(model, example_inputs=x)}.items()}
        if failed:
            times["torch.export (non-strict)"] = float("nan")
        rows.append((name, times))
    return rows


def wrn_row(depth: int, rounds: int) -> dict:
    import wninit
    from wninit.models import build_model

    model = build_model("wrn", in_shape=(3, 8, 8), num_classes=10, depth=depth, width=16, k=1)
    x = torch.randn(1, 3, 8, 8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {"layers": sum(1 for _ in model.modules() if isinstance(_, torch.nn.Conv2d)),
                **{k: _best(f, rounds) for k, f in {
                    "initialize (declared)": lambda: wninit.initialize(model),
                    "initialize, fx": lambda: wninit.initialize(model, discover=True),
                    "initialize, by running": lambda: wninit.initialize(model, discover=True, example_inputs=x)}.items()}}


def run(quick: bool = False, rounds: int = 3) -> dict:
    """Recording cost on the zoo beside a forward, and the WRN's initialize by running, with fx and declared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        load = os.getloadavg()[0]
        rows = zoo_rows(rounds)
        depth = 1000 if quick else 10000
        wrn = wrn_row(depth, rounds if quick else 1)
        return {"quick": quick, "load_before": load, "zoo": rows, "depth": depth, "wrn": wrn,
                "load_after": os.getloadavg()[0]}
    finally:
        torch.set_num_threads(threads)


def table(result: dict) -> str:
    rows = result["zoo"]
    cols = list(rows[0][1])
    lines = [f"load average before: {result['load_before']:.2f} on {os.cpu_count()} cores; one torch thread",
             f"{'model':<18}" + "".join(f"{c:>28}" for c in cols) + f"{'record/forward':>16}"]
    worst = 0.0
    for name, t in rows:
        ratio = t["record"] / t["forward"]
        worst = max(worst, ratio)
        lines.append(f"{name:<18}" + "".join(f"{t[c]:>27.4f}s" for c in cols) + f"{ratio:>15.2f}x")
    lines.append(f"check: record costs at most {MAX_FORWARDS:g} forward passes: worst {worst:.2f}x "
                 f"{'OK' if worst <= MAX_FORWARDS else 'FAILED'}")
    w, depth = result["wrn"], result["depth"]
    lines.append(f"WN WRN depth {depth} ({w['layers']} convs): "
                 + ", ".join(f"{k} {v:.2f}s" for k, v in w.items() if k != "layers"))
    if not result["quick"]:
        ok = w["initialize, by running"] < TEN_K_SECONDS
        lines.append(f"check: initialize with an example input on the 10,000-layer WRN under {TEN_K_SECONDS:g} s: "
                     f"{w['initialize, by running']:.2f}s {'OK' if ok else 'FAILED'}")
    lines.append(f"load average after: {result['load_after']:.2f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(table(run(args.quick, args.rounds)))


if __name__ == "__main__":
    main()
