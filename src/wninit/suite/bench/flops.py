"""Achieved FLOP/s of an MLP training step as a fraction of this machine's large-matmul FLOP/s.

The ceiling is measured in the same run, interleaved with the steps: ``A @ B`` with 2048x2048 float32
matrices (2*2048^3 FLOP). The step is the suite's MLP(784 -> 512 x depth -> 10), batch 128, forward +
backward + ``SGD(momentum=0.9, weight_decay=5e-4).step()`` (as bench/wn.py), plain and
with wninit's WN (``initialize(model, "proposed")``).
FLOP counted: ``2*B*in*out`` per Linear forward and the same for each of its two backward matmuls
(``6*B*in*out``), except the first layer, whose input needs no gradient (``4*B*in*out``); the
elementwise ops, the loss and the optimizer count zero, so they show up as lost throughput.

Where the fraction is below :data:`FLOPS_TARGET`, the benchmark says where the time goes:
the variant "gemms alone" times the step's own matmul shapes alone (how fast MKL is at batch 128:
the ceiling for this step), and ``breakdown`` groups a torch.profiler trace of the step by kind of op.
Run: ``python -m wninit.suite.bench.flops [--quick] [--out DIR]``.
"""
from __future__ import annotations


import torch
import torch.nn.functional as F

from wninit.suite.bench.common import (Table, machine, main, num_threads, report, summary, thread_counts,
                                       time_interleaved)

import wninit
from wninit.models import MLP

BATCH, IN, WIDTH, CLASSES, CEILING_N = 128, 784, 512, 10, 2048
# A training step should keep the matmul units busy: 80% of the large-matmul rate leaves room for the
# optimizer and elementwise ops, and is what plain PyTorch nearly reaches on this MLP.
FLOPS_TARGET = 0.80

# torch.profiler op name -> what it is, for the breakdown
_KINDS = {
    "aten::mm": "matmul", "aten::addmm": "matmul", "aten::bmm": "matmul",
    "aten::_weight_norm_interface": "weight norm", "aten::_weight_norm_interface_backward": "weight norm",
    "aten::relu": "ReLU", "aten::clamp_min": "ReLU", "aten::threshold_backward": "ReLU",
    "aten::sum": "bias grad (sum)",
    "aten::_log_softmax": "loss", "aten::_log_softmax_backward_data": "loss", "aten::nll_loss_forward": "loss",
    "aten::nll_loss_backward": "loss",
}


def step_flop(depth: int) -> int:
    layers = [(IN, WIDTH)] + [(WIDTH, WIDTH)] * (depth - 1) + [(WIDTH, CLASSES)]
    return sum((4 if i == 0 else 6) * BATCH * n_in * n_out for i, (n_in, n_out) in enumerate(layers))


def _step(depth: int, variant: str, optimizer: bool = True):
    torch.manual_seed(0)
    model = MLP(IN, WIDTH, depth, CLASSES, "none" if variant == "plain" else "wn")
    wninit.initialize(model, "he" if variant == "plain" else "proposed", generator=torch.Generator().manual_seed(0))
    x, y = torch.randn(BATCH, IN), torch.randint(0, CLASSES, (BATCH,))
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=5e-4)  # as bench_wn

    def step():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        if optimizer:
            opt.step()
    return step


def _gemms(depth: int):
    """The step's matmuls alone, same shapes and orientations as Linear's forward and backward."""
    shapes = [(IN, WIDTH, False)] + [(WIDTH, WIDTH, True)] * (depth - 1) + [(WIDTH, CLASSES, True)]
    mats = [(torch.randn(BATCH, i), torch.randn(o, i), torch.randn(BATCH, o), needs_x) for i, o, needs_x in shapes]

    def call():
        for x, w, gy, needs_x in mats:
            x @ w.t()            # forward
            gy.t() @ x           # grad_w
            if needs_x:
                gy @ w           # grad_x
    return call


def _kind(event) -> str:
    """What an op is for: by its name, or "optimizer" when it runs inside the optimizer's step/zero_grad."""
    parent = event
    while parent is not None:
        if parent.name.startswith("Optimizer."):
            return "optimizer (SGD)"
        parent = parent.cpu_parent
    if event.name == "aten::copy_":
        return "bias into output (addmm)"
    return _KINDS.get(event.name, "other")


def _breakdown(step, steps: int = 5) -> dict:
    from torch.profiler import ProfilerActivity, profile

    step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    kinds: dict[str, float] = {}
    ops: dict[str, list] = {}
    for e in prof.events():
        if e.self_cpu_time_total <= 0:
            continue
        kind = _kind(e)
        kinds[kind] = kinds.get(kind, 0.0) + e.self_cpu_time_total
        ops.setdefault(e.name, [0.0, 0])
        ops[e.name][0] += e.self_cpu_time_total
        ops[e.name][1] += 1
    total = sum(kinds.values())
    top = sorted(ops.items(), key=lambda kv: -kv[1][0])[:8]
    return {"by_kind": {k: v / total for k, v in sorted(kinds.items(), key=lambda kv: -kv[1])},
            "top_ops": [{"op": name, "share": t / total, "calls": n // steps} for name, (t, n) in top]}


def _measure(depth: int, threads: int, rounds: int, matrices) -> dict:
    a, b = matrices
    with num_threads(threads):
        variants = {"matmul 2048": lambda: a @ b, "gemms alone": _gemms(depth),
                    "plain": _step(depth, "plain"), "wninit": _step(depth, "wninit"),
                    "wninit, no SGD step": _step(depth, "wninit", optimizer=False)}
        stats = {k: summary(v) for k, v in time_interleaved(variants, rounds, warmup=2).items()}
        ceiling = 2 * CEILING_N ** 3 / stats["matmul 2048"]["median"]
        flop = step_flop(depth)
        row = {"depth": depth, "threads": threads, "step_gflop": flop / 1e9, "ceiling_gflops": ceiling / 1e9,
               "stats": stats, "gflops": {k: flop / s["median"] / 1e9 for k, s in stats.items() if k != "matmul 2048"}}
        row["fraction"] = {k: g * 1e9 / ceiling for k, g in row["gflops"].items()}
        if min(row["fraction"][k] for k in ("plain", "wninit")) < FLOPS_TARGET:
            row["breakdown"] = {v: _breakdown(_step(depth, v)) for v in ("plain", "wninit")}
    return row


def run(quick: bool = False, threads: int | None = None) -> dict:
    threads = thread_counts(quick, threads)
    depths = [10] if quick else [10, 50]
    matrices = torch.randn(CEILING_N, CEILING_N), torch.randn(CEILING_N, CEILING_N)
    before = machine()
    flush = torch.set_flush_denormal(True)
    try:
        rows = [_measure(depth, t, 5 if quick else 11, matrices) for t in threads for depth in depths]
    finally:
        torch.set_flush_denormal(False)
    return {"benchmark": "flops", "quick": quick, "batch": BATCH, "width": WIDTH, "threads": threads,
            "machine": before, "load_average_after": machine()["load_average"], "flush_denormal": flush,
            "rows": rows, "target_fraction": FLOPS_TARGET}


def tables(result: dict) -> list[Table]:
    """One table per (depth, threads): each variant's time, GFLOP/s and share of the ceiling; where the
    target is missed, the profiler's breakdown as notes."""
    out = []
    for r in result["rows"]:
        rows = [[k, f"{r['stats'][k]['median'] * 1e3:.2f}", f"{g:.1f}", f"{100 * r['fraction'][k]:.0f}%",
                 f"{100 * r['stats'][k]['spread']:.0f}%"] for k, g in r["gflops"].items()]
        notes = [f"ceiling: 2048x2048 matmul at {r['ceiling_gflops']:.1f} GFLOP/s (same run); step = "
                 f"{r['step_gflop']:.2f} GFLOP; target {100 * result['target_fraction']:.0f}%"]
        for variant, b in r.get("breakdown", {}).items():
            kinds = ", ".join(f"{k} {100 * v:.0f}%" for k, v in b["by_kind"].items())
            ops = ", ".join(f"{o['op']} {100 * o['share']:.0f}%" for o in b["top_ops"][:5])
            notes.append(f"where {variant}'s time goes (profiler, self CPU time): {kinds}; top ops: {ops}")
        out.append(Table(f"MLP width {result['width']} x depth {r['depth']}, batch {result['batch']}, "
                         f"{r['threads']} thread{'s' if r['threads'] > 1 else ''}",
                         ["variant", "ms", "GFLOP/s", "of ceiling", "spread"], rows, notes))
    return out


def table(result: dict) -> str:
    return report(tables(result), result)


if __name__ == "__main__":
    raise SystemExit(main(run, table, "bench_flops", __doc__.splitlines()[0], threads_flag=True))
