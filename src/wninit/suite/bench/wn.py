"""Weight norm's cost in a training step: plain layer vs torch's parametrization vs wninit's WN layer.

Three tables, every variant interleaved in one process (bench/common.py):

1. ``steps``: one training step (forward, backward, ``SGD(lr, momentum=0.9, weight_decay=5e-4).step()``
   as train/single_run.py builds it), batch 128, of the MLP(784 -> width x depth -> 10) for width 128/512 and
   depth 10/50/200, the suite's CNN(3,128,5,10) and WRN-16-2 on 3x32x32, each with plain layers
   (``norm="none"``, He init), torch's ``parametrizations.weight_norm`` and wninit's layers (both
   ``initialize(model, "proposed")``), at the machine's thread count and at 1 thread. Ratios are wn/plain
   medians of the same run; "(CPU time)" is the same ratio in process CPU time, steadier on a busy
   machine. Checked against :data:`STEP_TARGET`.
2. ``implementations``: forward+backward of one hidden layer per shape: plain, ``wninit`` (the shipped
   path: ATen's fused kernel, ``wn_formula.wn_weight``) and ``torch``, each WN variant first checked
   equal to torch's weight norm. ``fresh w`` is a control, not WN: the plain layer with ``w * 1.0`` as
   its weight, the cost of any weight computed anew at each step. (The other ways of computing WN that
   were measured and lost are findings in docs/performance.md.)
3. ``kernels``: WN's two kernels' time per training step of the wninit MLPs inside real steps (profiler)
   and alone on the same tensors: what share of the step WN's arithmetic itself takes, and the floor it
   sets under wn/plain (1 + kernels / plain step, same run).

Denormal floats are flushed during the run, so that a variant whose signal decays (deep nets) cannot be
slowed by denormal arithmetic instead of by its own cost.
Run: ``python -m wninit.suite.bench.wn [--quick] [--out DIR]``.
"""
from __future__ import annotations


import torch
import torch.nn.functional as F
from torch import nn

from wninit.suite.bench.common import (Table, build_variant, machine, main, num_threads, report, summary,
                                       thread_counts, time_interleaved)

import wninit
from wninit.weightnorm.access import weight_norm

BATCH = 128
VARIANTS = ("plain", "torch", "wninit")
MLP_SIZES = [(w, d) for w in (128, 512) for d in (10, 50, 200)]
# WN's training step at most 10% over the plain layer's at every MLP size: cheap enough that speed is no
# reason to train a deep net without normalization (the convs are bound by their convolutions, not WN).
STEP_TARGET = 1.10


# ---------------------------------------------------------------- table 1: training steps

def _build(kind: str, size, variant: str) -> tuple[nn.Module, torch.Tensor]:
    model = build_variant(kind, (16, 2) if kind == "wrn" else size, variant)
    return model, torch.randn((BATCH, 784) if kind == "mlp" else (BATCH, 3, 32, 32))


def _stepper(model: nn.Module, x: torch.Tensor):
    y = torch.randint(0, 10, (x.shape[0],), generator=torch.Generator().manual_seed(1))
    # docs/method.md §6.1's CIFAR optimizer as train/single_run.py builds it, torch's default SGD: a loop over
    # parameters on CPU (WN's third parameter per layer pays for it), multi-tensor ops on CUDA.
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=5e-4)

    def step():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return step


def _time_steps(kind, size, threads, rounds, budget):
    variants = {v: _stepper(*_build(kind, size, v)) for v in VARIANTS}
    with num_threads(threads):
        for step in variants.values():  # calls per sample: ~50 ms of work, so the timer's noise is negligible
            step()
        probe = time_interleaved({"p": variants["plain"]}, 1, warmup=0)["p"][0]
        number = max(1, int(0.05 / probe))
        cpu: dict[str, list[float]] = {}
        samples = time_interleaved(variants, rounds, number=number, warmup=1, budget_s=budget, cpu=cpu)
    stats = {v: summary(s) for v, s in samples.items()}
    cpu_stats = {v: summary(s) for v, s in cpu.items()}
    row = {"model": _label(kind, size), "kind": kind, "threads": threads, "number": number, "stats": stats,
           "cpu_stats": cpu_stats}
    for v in VARIANTS[1:]:
        row[f"ratio_{v}"] = stats[v]["median"] / stats["plain"]["median"]
        row[f"cpu_ratio_{v}"] = cpu_stats[v]["median"] / cpu_stats["plain"]["median"]
    return row


def _label(kind, size) -> str:
    return {"mlp": f"MLP {size[0]}x{size[1]}" if size else "MLP", "cnn": "CNN(3,128,5,10)", "wrn": "WRN-16-2"}[kind]


def _checks(rows: list[dict]) -> dict:
    mlp = [r for r in rows if r["kind"] == "mlp"]
    within = all(r["ratio_wninit"] <= STEP_TARGET for r in mlp)
    beats = all(r["ratio_wninit"] < r["ratio_torch"] for r in rows if r["ratio_torch"] > STEP_TARGET)
    return {"wninit_within_target_every_mlp": within, "wninit_faster_than_torch_where_torch_over_target": beats,
            "worst_mlp_ratio": max((r["ratio_wninit"] for r in mlp), default=None)}


# ---------------------------------------------------------------- table 3: WN's kernels inside a step

_KERNELS = ("aten::_weight_norm_interface", "aten::_weight_norm_interface_backward")


def _kernels_in_step(size, threads: int, layer_steps: int = 300) -> dict:
    """How much of a training step of the wninit MLP is WN's own arithmetic: its two kernels'
    self time per step, taken by the profiler inside real steps, against the wninit step and against the
    plain step (both timed without the profiler, interleaved). ``floor`` = 1 + kernels / plain step: the
    wn/plain ratio these kernels allow if every other cost of WN (its ops' dispatch, autograd nodes, g's
    optimizer update) were zero. For scale, the same two kernels called alone, one layer after another, on
    the same tensors with warm caches (wall time, so it includes each call's dispatch). Inside a step the
    caches are colder and the dispatch is not counted, so the two columns differ either way."""
    from torch.profiler import profile

    model, x = _build("mlp", size, "wninit")
    step = _stepper(model, x)
    plain_step = _stepper(*_build("mlp", size, "plain"))
    layers = [m for m in model.modules() if hasattr(m, "v")]
    with num_threads(threads):
        for _ in range(5):
            step()
        n_steps = max(3, layer_steps // size[1])  # about the same profiled work whatever the depth
        with profile() as prof:
            for _ in range(n_steps):
                step()
        self_us = {e.key: e.self_cpu_time_total / n_steps for e in prof.key_averages() if e.key in _KERNELS}
        timed = time_interleaved({"wninit": step, "plain": plain_step}, 5, number=max(1, 50 // size[1]), warmup=1)
        step_s, plain_s = (summary(timed[v])["median"] for v in ("wninit", "plain"))

        def alone():
            for layer in layers:
                g = layer.g.detach().view(-1, 1)
                w, norms = torch._weight_norm_interface(layer.v.detach(), g, 0)
                torch.ops.aten._weight_norm_interface_backward(w, layer.v.detach(), g, norms, 0)
        alone_s = summary(time_interleaved({"a": alone}, 5, number=max(1, 200 // size[1]), warmup=1)["a"])["median"]
    in_step_us = sum(self_us.values())
    return {"model": _label("mlp", size), "threads": threads, "step_ms": step_s * 1e3, "plain_step_ms": plain_s * 1e3,
            "in_step_us": in_step_us, "alone_us": alone_s * 1e6, "share_of_step": in_step_us * 1e-6 / step_s,
            "floor": 1 + in_step_us * 1e-6 / plain_s}


# ---------------------------------------------------------------- table 2: implementations of WN

SHAPES = {  # name -> (plain layer factory, input shape): the suite's hidden layers
    "Linear 784->128": (lambda: nn.Linear(784, 128), (BATCH, 784)),
    "Linear 128->128": (lambda: nn.Linear(128, 128), (BATCH, 128)),
    "Linear 512->512": (lambda: nn.Linear(512, 512), (BATCH, 512)),
    "Conv 128->128 3x3 @8x8": (lambda: nn.Conv2d(128, 128, 3, padding=1), (BATCH, 128, 8, 8)),
    "Conv 32->32 3x3 @32x32": (lambda: nn.Conv2d(32, 32, 3, padding=1), (BATCH, 32, 32, 32)),
    "Conv 32->64 1x1 @32x32 s2": (lambda: nn.Conv2d(32, 64, 1, stride=2), (BATCH, 32, 32, 32)),
}
IMPLS = ("plain", "wninit", "torch")
# A control, not WN: the plain layer with its weight passed through one elementwise op per forward
# (w * 1.0), i.e. any weight computed anew at each step. What it costs over plain is what materializing
# a weight costs (a new tensor, one more autograd node, the GEMM reading fresh memory), whatever the formula.
CONTROL = "fresh w"


def _impl_forwards(make) -> dict:
    torch.manual_seed(0)
    plain = make()
    wn = {name: weight_norm(make(), "torch" if name == "torch" else "wninit") for name in IMPLS[1:]}
    for layer in wn.values():  # same g, v, b everywhere, g != ||v||
        with torch.no_grad():
            wninit.set_v_(layer, wninit.wn_v(wn["wninit"]))
            wninit.set_g_(layer, torch.linspace(0.5, 2.0, wninit.wn_g(layer).numel()))
            layer.bias.copy_(wn["wninit"].bias)
    forwards = {"plain": plain, "wninit": wn["wninit"], "torch": wn["torch"]}
    control = make()
    op = F.linear if isinstance(control, nn.Linear) else control._conv_forward
    forwards[CONTROL] = lambda x: op(x, control.weight * 1.0, control.bias)
    return forwards, wn, control


def _check_equal(forwards, wn, x):
    """Every WN variant gives torch's output and gradients (else its timing would mean nothing)."""
    gy = torch.randn_like(forwards["torch"](x))
    ref = None
    for name in IMPLS[1:]:
        layer = wn[name]
        layer.zero_grad(set_to_none=True)
        xg = x.detach().clone().requires_grad_(True)
        forwards[name](xg).backward(gy)
        g = layer.parametrizations.weight.original0 if name == "torch" else layer.g
        got = [xg.grad, g.grad.view(-1), wninit.wn_v(layer).grad, layer.bias.grad]
        if ref is None:
            ref = got
        for a, b, what in zip(got, ref, ("x", "g", "v", "b")):  # float32 sums in other orders: relative error
            err = float((a - b).norm() / b.norm())
            if err > 1e-5:
                raise AssertionError(f"WN variant {name!r}: gradient wrt {what} off by {err:.1e} (relative)")
        layer.zero_grad(set_to_none=True)


def _time_impls(shape_name, threads, rounds, budget):
    make, in_shape = SHAPES[shape_name]
    forwards, wn, control = _impl_forwards(make)
    x = torch.randn(in_shape).requires_grad_(True)  # a hidden layer: grad wrt x is computed too
    _check_equal(forwards, wn, x)
    gy = torch.randn_like(forwards["plain"](x))
    params = {name: list(layer.parameters()) for name, layer in wn.items()} | {
        "plain": list(forwards["plain"].parameters()), CONTROL: list(control.parameters())}

    def fwd_bwd(name):
        def call():
            forwards[name](x).backward(gy)
            for p in params[name]:
                p.grad = None
            x.grad = None
        return call

    variants = {name: fwd_bwd(name) for name in IMPLS + (CONTROL,)}
    with num_threads(threads):
        probe = time_interleaved({"p": variants["plain"]}, 1, warmup=2)["p"][0]
        samples = time_interleaved(variants, rounds, number=max(1, int(0.02 / probe)), budget_s=budget)
    stats = {v: summary(s) for v, s in samples.items()}
    fastest = min(IMPLS[1:], key=lambda v: stats[v]["median"])
    return {"shape": shape_name, "threads": threads, "stats": stats, "fastest_wn": fastest,
            "extra_us": {v: (stats[v]["median"] - stats["plain"]["median"]) * 1e6 for v in IMPLS[1:] + (CONTROL,)}}


# ---------------------------------------------------------------- run / table

def run(quick: bool = False, threads: int | None = None) -> dict:
    """The three tables (``--quick``: 3 MLP sizes, the machine's thread count only, fewer rounds)."""
    threads = thread_counts(quick, threads)
    rounds, budget = (5, 6.0) if quick else (11, 40.0)
    specs = [("mlp", s) for s in (MLP_SIZES if not quick else [(128, 10), (128, 50), (512, 10)])]
    specs += [("cnn", None), ("wrn", None)]
    before = machine()
    flush = torch.set_flush_denormal(True)
    try:
        steps = [_time_steps(kind, size, t, rounds, budget) for kind, size in specs for t in threads]
        impls = [_time_impls(s, t, rounds, budget / 4) for s in SHAPES for t in threads]
        kernels = [_kernels_in_step(size, t) for kind, size in specs if kind == "mlp" for t in threads]
    finally:
        torch.set_flush_denormal(False)
    return {"benchmark": "wn", "quick": quick, "batch": BATCH, "threads": threads, "machine": before,
            "load_average_after": machine()["load_average"], "flush_denormal": flush, "steps": steps,
            "implementations": impls, "kernels": kernels, "checks": _checks(steps)}


def _fmt(row: dict, key: str, spec: str) -> str:
    return format(row[key], spec) if key in row else "-"


def tables(result: dict) -> list[Table]:
    """Steps, implementations, kernels. Rows of an older JSON keep only the columns this file still measures."""
    cols = ["model", "threads"] + [f"{v} ms" for v in VARIANTS] + ["torch/plain", "wninit/plain", "(CPU time)", "spread"]
    rows = [[r["model"], r["threads"]] + [f"{r['stats'][v]['median'] * 1e3:.2f}" for v in VARIANTS]
            + [_fmt(r, k, ".3f") for k in ("ratio_torch", "ratio_wninit", "cpu_ratio_wninit")]
            + [f"{max(r['stats'][v]['spread'] for v in VARIANTS) * 100:.0f}%"] for r in result["steps"]]
    mlp = [r for r in result["steps"] if r["kind"] == "mlp"]
    met = sum(r["ratio_wninit"] <= STEP_TARGET for r in mlp)
    beats = all(r["ratio_wninit"] < r["ratio_torch"] for r in result["steps"] if r["ratio_torch"] > STEP_TARGET)
    notes = [f"wninit <= {STEP_TARGET:.2f}x plain in {met} of {len(mlp)} MLP cells (worst "
             f"{max(r['ratio_wninit'] for r in mlp):.3f}x); wninit faster than torch wherever torch > "
             f"{STEP_TARGET:.2f}x: {beats}"]
    out = [Table("Training step: forward + backward + SGD(momentum 0.9, weight decay 5e-4) step, batch "
                 f"{result['batch']}, median of rounds, spread = IQR/median", cols, rows, notes)]
    shown = IMPLS + (CONTROL,)
    cols = ["layer", "threads"] + [f"{v} us" for v in shown]
    rows = [[r["shape"], r["threads"]] + [f"{r['stats'][v]['median'] * 1e6:.0f}" for v in shown]
            for r in result["implementations"]]
    out.append(Table(f"One hidden layer's forward + backward, batch {result['batch']} (fresh w: the plain layer "
                     "with w * 1.0 as its weight, a control)", cols, rows))
    cols = ["model", "threads", "plain step ms", "wninit step ms", "WN kernels in the step us", "same kernels alone us",
            "share of wninit step", "floor (1 + kernels/plain)"]
    rows = [[r["model"], r["threads"], _fmt(r, "plain_step_ms", ".2f"), f"{r['step_ms']:.2f}", f"{r['in_step_us']:.0f}",
             f"{r['alone_us']:.0f}", f"{100 * r['share_of_step']:.1f}%", _fmt(r, "floor", ".3f")]
            for r in result.get("kernels", [])]
    out.append(Table("WN's two kernels (forward, backward) per training step: inside the step (profiler) and alone "
                     "on the same tensors", cols, rows,
                     [f"floor: the wn/plain ratio ATen's WN kernels alone allow; the target is {STEP_TARGET:.2f}"]))
    return out


def table(result: dict) -> str:
    return report(tables(result), result)


if __name__ == "__main__":
    raise SystemExit(main(run, table, "bench_wn", __doc__.splitlines()[0], threads_flag=True))
