"""Weight norm's cost in a training step: plain layer vs torch's parametrization vs wninit's WN layer.

Three tables, every variant interleaved in one process (benchmarks/common.py):

1. ``steps``: one training step (forward, backward, ``SGD(lr, momentum=0.9, weight_decay=5e-4).step()``
   as train/fit.py builds it), batch 128, of the MLP(784 -> width x depth -> 10) for width 128/512 and
   depth 10/50/200, the suite's CNN(3,128,5,10) and WRN-16-2 on 3x32x32, each with plain layers
   (``norm="none"``, He init), torch's ``parametrizations.weight_norm`` and wninit's layers (both
   ``initialize(model, "proposed")``), at the machine's thread count and at 1 thread. Ratios are wn/plain
   medians of the same run; "(CPU time)" is the same ratio in process CPU time, steadier on a busy
   machine. For the MLPs, "SGD fused" repeats plain and wninit with ``fused=True`` (one fused update
   kernel per parameter instead of torch's CPU default, a Python loop of update ops over parameters;
   ``foreach=True`` was tried too and measured no faster here). fit keeps the default: fused SGD rounds
   differently, which would break the bitwise equality of batched (sweep/ensemble.py) and standalone runs.
   Target: wninit <= 1.10x plain at every MLP size, and faster than torch wherever torch > 1.10x.
2. ``implementations``: forward+backward of one hidden layer per shape, for the ways to compute WN that
   were tried: ``wninit`` (the shipped fast path: ATen's fused kernel, ``wn_formula.wn_weight``),
   ``function`` (custom autograd.Function with the analytic gradient), ``outscale``
   (``(x v^T) * g/||v|| + b``), ``autograd`` (``g*v/||v||`` by autograd) and ``torch``; the reason
   wn_formula.py uses the one it does. Each variant is first checked equal to torch's weight norm.
   ``fresh w`` is a control, not WN: the plain layer with ``w * 1.0`` as its weight, the cost of any
   weight computed anew at each step.
3. ``kernels``: WN's two kernels' time per training step of the wninit MLPs inside real steps (profiler)
   and alone on the same tensors: what share of the step WN's arithmetic itself takes, and the floor it
   sets under wn/plain (1 + kernels / plain step, same run).

Denormal floats are flushed during the run, so that a variant whose signal decays (deep nets) cannot be
slowed by denormal arithmetic instead of by its own cost.
Run: ``python benchmarks/bench_wn.py [--quick] [--out DIR] [--compile]``.
"""
from __future__ import annotations

import os
import sys

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import build_variant, busy_note, format_table, machine, main, num_threads, summary, time_interleaved  # noqa: E402

import wninit  # noqa: E402
from wninit.weightnorm import weight_norm  # noqa: E402

BATCH = 128
VARIANTS = ("plain", "torch", "wninit")
MLP_SIZES = [(w, d) for w in (128, 512) for d in (10, 50, 200)]
TARGET = 1.10


# ---------------------------------------------------------------- table 1: training steps

def _build(kind: str, size, variant: str) -> tuple[nn.Module, torch.Tensor]:
    model = build_variant(kind, (16, 2) if kind == "wrn" else size, variant)
    return model, torch.randn((BATCH, 784) if kind == "mlp" else (BATCH, 3, 32, 32))


def _stepper(model: nn.Module, x: torch.Tensor, fused: bool | None = None, compiled: bool = False):
    y = torch.randint(0, 10, (x.shape[0],), generator=torch.Generator().manual_seed(1))
    # docs/method.md §6.1's CIFAR optimizer as train/fit.py builds it; fused=None is torch's default: a loop over
    # parameters on CPU (WN's third parameter per layer pays for it), multi-tensor ops on CUDA.
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=5e-4, fused=fused)
    forward = torch.compile(model) if compiled else model

    def step():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(forward(x), y).backward()
        opt.step()
    return step


def _time_steps(kind, size, threads, rounds, budget, extras):
    variants = {}
    for v in VARIANTS:
        variants[v] = _stepper(*_build(kind, size, v))
    if "fused" in extras:
        for v in ("plain", "wninit"):
            variants[f"{v} fused"] = _stepper(*_build(kind, size, v), fused=True)
    if "compile" in extras:
        variants["wninit compiled"] = _stepper(*_build(kind, size, "wninit"), compiled=True)
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
    for v in stats:
        base = "plain fused" if v == "wninit fused" else "plain"
        if v not in ("plain", "plain fused"):
            row[f"ratio_{v}"] = stats[v]["median"] / stats[base]["median"]
            row[f"cpu_ratio_{v}"] = cpu_stats[v]["median"] / cpu_stats[base]["median"]
    return row


def _label(kind, size) -> str:
    return {"mlp": f"MLP {size[0]}x{size[1]}" if size else "MLP", "cnn": "CNN(3,128,5,10)", "wrn": "WRN-16-2"}[kind]


def _checks(rows: list[dict]) -> dict:
    mlp = [r for r in rows if r["kind"] == "mlp"]
    within = all(r["ratio_wninit"] <= TARGET for r in mlp)
    beats = all(r["ratio_wninit"] < r["ratio_torch"] for r in rows if r["ratio_torch"] > TARGET)
    return {"wninit_within_1.10x_plain_every_mlp": within, "wninit_faster_than_torch_where_torch_over_1.10x": beats,
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

class _AnalyticWN(torch.autograd.Function):
    """w = g v/||v|| with the hand-derived gradient.

    With s = g/||v|| and w = s v: grad_g = <grad_w, v>/||v|| per unit and
    grad_v = s (grad_w - (grad_g/||v||) v), i.e. the component of grad_w along v removed, scaled by s.
    """

    @staticmethod
    def forward(ctx, v, g):
        norm = torch.linalg.vector_norm(v.flatten(1), dim=1)
        scale = g / norm
        ctx.save_for_backward(v, norm, scale)
        return v * scale.view((-1,) + (1,) * (v.dim() - 1))

    @staticmethod
    def backward(ctx, grad_w):
        v, norm, scale = ctx.saved_tensors
        shape = (-1,) + (1,) * (v.dim() - 1)
        grad_g = (grad_w * v).flatten(1).sum(1) / norm
        grad_v = torch.addcmul(grad_w, v, (grad_g / norm).view(shape), value=-1).mul_(scale.view(shape))
        return grad_v, grad_g


def _wn_forward(layer: nn.Module, how: str):
    """A forward for a wninit WN layer computing WN the way ``how`` says, from the layer's own g, v, b."""
    is_linear = isinstance(layer, nn.Linear)
    op = F.linear if is_linear else layer._conv_forward

    def weight():
        v, g = layer.v, layer.g
        if how == "function":
            return _AnalyticWN.apply(v, g)
        return v * (g / v.flatten(1).norm(dim=1)).view((-1,) + (1,) * (v.dim() - 1))  # "autograd"

    def forward(x):
        if how == "outscale":  # y = (x v^T) * g/||v|| + b: per-output scaling instead of a new weight
            scale = layer.g / torch.linalg.vector_norm(layer.v.flatten(1), dim=1)
            shape = (1, -1) + (1,) * (x.dim() - 2)
            return torch.addcmul(layer.bias.view(shape), op(x, layer.v, None), scale.view(shape))
        return op(x, weight(), layer.bias)
    return forward


SHAPES = {  # name -> (plain layer factory, input shape): the suite's hidden layers
    "Linear 784->128": (lambda: nn.Linear(784, 128), (BATCH, 784)),
    "Linear 128->128": (lambda: nn.Linear(128, 128), (BATCH, 128)),
    "Linear 512->512": (lambda: nn.Linear(512, 512), (BATCH, 512)),
    "Conv 128->128 3x3 @8x8": (lambda: nn.Conv2d(128, 128, 3, padding=1), (BATCH, 128, 8, 8)),
    "Conv 32->32 3x3 @32x32": (lambda: nn.Conv2d(32, 32, 3, padding=1), (BATCH, 32, 32, 32)),
    "Conv 32->64 1x1 @32x32 s2": (lambda: nn.Conv2d(32, 64, 1, stride=2), (BATCH, 32, 32, 32)),
}
IMPLS = ("plain", "wninit", "torch", "function", "outscale", "autograd")
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
    forwards.update({how: _wn_forward(wn[how], how) for how in ("function", "outscale", "autograd")})
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

def run(quick: bool = False, compiled: bool = False) -> dict:
    """The two tables; ``compiled`` adds a ``torch.compile``d wninit model to the steps (optional, slow to build)."""
    cores = os.cpu_count() or 1
    threads = [cores] if quick else sorted({cores, 1}, reverse=True)
    rounds, budget = (5, 6.0) if quick else (11, 40.0)
    specs = [("mlp", s) for s in (MLP_SIZES if not quick else [(128, 10), (128, 50), (512, 10)])]
    specs += [("cnn", None), ("wrn", None)]
    before = machine()
    flush = torch.set_flush_denormal(True)
    try:
        steps = []
        for kind, size in specs:
            extras = ({"fused"} if kind == "mlp" else set()) | ({"compile"} if compiled else set())
            steps += [_time_steps(kind, size, t, rounds, budget, extras) for t in threads]
        impls = [_time_impls(s, t, rounds, budget / 4) for s in SHAPES for t in threads]
        kernels = [_kernels_in_step(size, t) for kind, size in specs if kind == "mlp" for t in threads]
    finally:
        torch.set_flush_denormal(False)
    return {"benchmark": "wn", "quick": quick, "batch": BATCH, "threads": threads, "machine": before,
            "load_average_after": machine()["load_average"], "flush_denormal": flush, "steps": steps,
            "implementations": impls, "kernels": kernels, "checks": _checks(steps)}


def table(result: dict) -> str:
    m = result["machine"]
    head = (f"machine: {m['cpu']}, {m['cpu_count']} CPUs, torch {m['torch']}, load average "
            f"{m['load_average']} -> {result['load_average_after']}; batch {result['batch']}; median of rounds, "
            "spread = IQR/median")
    cols = ["model", "threads"] + [f"{v} ms" for v in VARIANTS] + ["torch/plain", "wninit/plain", "(CPU time)",
                                                                   "SGD fused: wninit/plain", "compiled/plain", "spread"]
    rows = []
    for r in result["steps"]:
        s = r["stats"]
        rows.append([r["model"], r["threads"]] + [f"{s[v]['median'] * 1e3:.2f}" for v in VARIANTS]
                    + [f"{r[k]:.3f}" if k in r else "-" for k in ("ratio_torch", "ratio_wninit", "cpu_ratio_wninit",
                                                                   "ratio_wninit fused", "ratio_wninit compiled")]
                    + [f"{max(x['spread'] for x in s.values()) * 100:.0f}%"])
    c = result["checks"]
    notes = [f"wninit <= {TARGET:.2f}x plain at every MLP size: {c['wninit_within_1.10x_plain_every_mlp']} "
             f"(worst {c['worst_mlp_ratio']:.3f}x); wninit faster than torch wherever torch > {TARGET:.2f}x: "
             f"{c['wninit_faster_than_torch_where_torch_over_1.10x']}"]
    title = "Training step: forward + backward + SGD(momentum 0.9, weight decay 5e-4) step"
    out = [head, format_table(title, cols, rows, notes)]
    cols = ["layer", "threads"] + [f"{v} us" for v in IMPLS + (CONTROL,)] + ["fastest WN"]
    rows = [[r["shape"], r["threads"]] + [f"{r['stats'][v]['median'] * 1e6:.0f}" if v in r["stats"] else "-"
                                          for v in IMPLS + (CONTROL,)] + [r["fastest_wn"]]
            for r in result["implementations"]]
    out.append(format_table("Implementations of WN: one hidden layer's forward + backward, batch 128", cols, rows))
    cols = ["model", "threads", "plain step ms", "wninit step ms", "WN kernels in the step us", "same kernels alone us",
            "share of wninit step", "floor (1 + kernels/plain)"]
    rows = [[r["model"], r["threads"], f"{r['plain_step_ms']:.2f}" if "plain_step_ms" in r else "-", f"{r['step_ms']:.2f}",
             f"{r['in_step_us']:.0f}", f"{r['alone_us']:.0f}", f"{100 * r['share_of_step']:.1f}%",
             f"{r['floor']:.3f}" if "floor" in r else "-"] for r in result.get("kernels", [])]
    out.append(format_table("WN's two kernels (forward, backward) per training step: inside the step (profiler) "
                            "and alone on the same tensors", cols, rows,
                            [f"floor: the wn/plain ratio ATen's WN kernels alone allow; the target is {TARGET:.2f}"]))
    warning = busy_note(m["load_average"], result["load_average_after"])
    return "\n\n".join(out + ([warning] if warning else []))


if __name__ == "__main__":
    compile_flag = "--compile" in sys.argv
    argv = [a for a in sys.argv[1:] if a != "--compile"]
    raise SystemExit(main(lambda quick: run(quick, compile_flag), table, "bench_wn", __doc__.splitlines()[0], argv))
