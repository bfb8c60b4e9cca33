"""The GPU path: WN vs BN steps per second on WRN-40-10, WN's cost on the MLPs, FLOP/s, init.

On a CUDA device (``--device cuda``, the default when one is present), batch 128, every variant
interleaved in rounds (bench/common.py), each sample the mean of ``STEPS`` steps timed between
``torch.cuda.synchronize`` calls:

1. ``wrn``: one SGD step (momentum 0.9, weight decay 5e-4, as train/single_run.py) of WRN-40-10 on a 3x32x32
   batch: WN with wninit's layers (``initialize(model, "proposed")``), WN through torch's
   parametrization, and BN (He init), each in fp32 (TF32 off, PyTorch's default for matmuls) and bf16
   autocast, NCHW and channels_last. Steps per second, and WN/BN.
2. ``mlp``: the CPU benchmark's MLPs (width 128/512, depth 10/50/200, input 784): plain vs torch's
   parametrization vs wninit, fp32; the wn/plain ratio .
3. ``flops``: the MLP 512 x 10 step's matmul FLOP/s against a 8192 x 8192 fp32 matmul measured in the same
   run, at batch 128 (launch-bound on a GPU) and 8192.
4. ``init``: ``initialize`` vs ``torch.nn.init.orthogonal_`` on WRN-40-10 and WRN-1000-1 held on the GPU
   (on a CUDA tensor each orthogonal direction is one cuSOLVER QR, one layer at a time, on both sides).

``--compiled`` runs only WRN-40-10 WN vs BN under ``torch.compile`` (bf16 + channels_last), with the
compilation time. Without a CUDA device it is skipped (``WNINIT_BENCH_DEVICE=cpu`` runs it on the CPU);
nothing here is needed for CI. ``benchmarks/gpu_check.sh`` of the source checkout runs it with the other GPU checks.
``--quick`` keeps WRN-40-10 fp32/bf16 NCHW and the depth-10 MLPs.
Run: ``python -m wninit.suite.bench.gpu [--quick] [--compiled] [--out DIR]``.
"""
from __future__ import annotations

import os
import sys
import time

import torch
import torch.nn.functional as F

from wninit.suite.bench.common import Table, build_variant, machine, machine_line, main, summary, text, time_interleaved

import wninit
from wninit.models import WideResNet
from wninit.suite.train.accel import PRECISIONS, as_input, autocast, to_memory_format
from wninit.weightnorm.access import weight_normed_layers, wn_v

BATCH = 128
STEPS = 10  # steps per timed sample
# WNINIT_BENCH_DEVICE=cpu runs it on a CPU anyway (slowly: WRN-40-10 steps); without it and without CUDA,
# run() skips, so that `wninit bench` on a laptop does not spend an hour here.
DEVICE = torch.device(os.environ.get("WNINIT_BENCH_DEVICE", "cuda" if torch.cuda.is_available() else "cpu"))
SKIP = DEVICE.type == "cpu" and "WNINIT_BENCH_DEVICE" not in os.environ


def _sync():
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()


def _stepper(model, x, y, precision="fp32", channels_last=False, compiled=False):
    model = to_memory_format(model.to(DEVICE), channels_last)
    x, y = as_input(x.to(DEVICE), channels_last), y.to(DEVICE)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=5e-4)
    forward = torch.compile(model) if compiled else model

    def steps():
        for _ in range(STEPS):
            opt.zero_grad(set_to_none=True)
            with autocast(precision, DEVICE):
                loss = F.cross_entropy(forward(x), y)
            loss.backward()
            opt.step()
        _sync()
    return steps


def _batch(kind, batch=BATCH):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(batch, 784, generator=g) if kind == "mlp" else torch.randn(batch, 3, 32, 32, generator=g)
    return x, torch.randint(0, 10, (batch,), generator=g)


def _rate(stats):  # steps per second from a sample of STEPS steps
    return STEPS / stats["median"]


def bench_wrn(quick: bool, rounds: int) -> list[dict]:
    combos = [(p, cl) for p in PRECISIONS for cl in ((False,) if quick else (False, True))]
    rows = []
    x, y = _batch("wrn")
    for precision, cl in combos:
        variants = {v: _stepper(build_variant("wrn", (40, 10), v), x, y, precision, cl) for v in ("wninit", "torch", "bn")}
        stats = {v: summary(s) for v, s in time_interleaved(variants, rounds, warmup=1).items()}
        rows.append({"precision": precision, "channels_last": cl, "steps_per_s": {v: _rate(s) for v, s in stats.items()},
                     "spread": max(s["spread"] for s in stats.values()),
                     "wn_over_bn_time": stats["wninit"]["median"] / stats["bn"]["median"]})
        del variants
        if DEVICE.type == "cuda":
            torch.cuda.empty_cache()
    return rows


def bench_wrn_compiled(rounds: int) -> dict:
    """WRN-40-10 WN (wninit) vs BN under ``torch.compile`` (default mode), bf16 + channels_last, and
    the first call's time (compilation); what ``wninit train --compile`` runs."""
    x, y = _batch("wrn")
    variants, first_call_s = {}, {}
    for v in ("wninit", "bn"):
        variants[v] = _stepper(build_variant("wrn", (40, 10), v), x, y, "bf16", True, compiled=True)
        t0 = time.perf_counter()
        variants[v]()  # compiles (and runs STEPS steps)
        first_call_s[v] = time.perf_counter() - t0
    stats = {v: summary(s) for v, s in time_interleaved(variants, rounds, warmup=1).items()}
    return {"steps_per_s": {v: _rate(s) for v, s in stats.items()}, "first_call_s": first_call_s,
            "wn_over_bn_time": stats["wninit"]["median"] / stats["bn"]["median"],
            "spread": max(s["spread"] for s in stats.values())}


def bench_mlp(quick: bool, rounds: int) -> list[dict]:
    sizes = [(w, d) for w in (128, 512) for d in ((10,) if quick else (10, 50, 200))]
    rows = []
    x, y = _batch("mlp")
    for size in sizes:
        variants = {v: _stepper(build_variant("mlp", size, v), x, y) for v in ("plain", "torch", "wninit")}
        stats = {v: summary(s) for v, s in time_interleaved(variants, rounds, warmup=1).items()}
        base = stats["plain"]["median"]
        rows.append({"width": size[0], "depth": size[1], "ms_per_step": {v: 1e3 * s["median"] / STEPS for v, s in stats.items()},
                     "ratio": {v: s["median"] / base for v, s in stats.items()},
                     "spread": max(s["spread"] for s in stats.values())})
    return rows


def bench_flops(rounds: int) -> dict:
    a = torch.randn(8192, 8192, device=DEVICE)
    matmul = summary(time_interleaved({"mm": lambda: (a @ a, _sync())}, rounds, warmup=1)["mm"])["median"]
    out = {"ceiling_tflops": 2 * 8192 ** 3 / matmul / 1e12}
    for batch in (128, 8192):
        x, y = _batch("mlp", batch)
        step = _stepper(build_variant("mlp", (512, 10), "wninit"), x, y)
        t = summary(time_interleaved({"step": step}, rounds, warmup=1)["step"])["median"] / STEPS
        flop = 3 * 2 * batch * (784 * 512 + 9 * 512 * 512 + 512 * 10)  # forward + two backward GEMMs per layer
        out[f"batch_{batch}"] = {"tflops": flop / t / 1e12, "fraction_of_ceiling": flop / t / 1e12 / out["ceiling_tflops"]}
    return out


def bench_init(quick: bool) -> list[dict]:
    rows = []
    for depth, k in ((40, 10),) + (() if quick else ((1000, 1),)):
        model = WideResNet(depth, k, 10).to(DEVICE)
        vs = [wn_v(m) for _, m in weight_normed_layers(model)]

        def orthogonal():
            for v in vs:
                torch.nn.init.orthogonal_(v)
            _sync()
        variants = {"initialize": lambda: (wninit.initialize(model, "proposed"), _sync()), "orthogonal_": orthogonal}
        stats = {v: summary(s) for v, s in time_interleaved(variants, 3, warmup=1).items()}
        rows.append({"model": f"WRN-{depth}-{k}", "layers": len(vs), "seconds": {v: s["median"] for v, s in stats.items()},
                     "ratio": stats["initialize"]["median"] / stats["orthogonal_"]["median"]})
    return rows


def run(quick: bool = False, only_compiled: bool = False) -> dict:
    if SKIP:
        return {"benchmark": "gpu", "skipped": "no CUDA device here (WNINIT_BENCH_DEVICE=cpu runs it on the CPU)"}
    started = time.perf_counter()
    rounds = 3 if quick else 5
    result = {"benchmark": "gpu", "quick": quick, "machine": machine(str(DEVICE))}
    sections = (("wrn", lambda: bench_wrn(quick, rounds)), ("mlp", lambda: bench_mlp(quick, rounds)),
                ("flops", lambda: bench_flops(rounds)), ("init", lambda: bench_init(quick)),
                ("wrn_compiled", lambda: bench_wrn_compiled(rounds)))
    for name, fn in sections[-1:] if only_compiled else sections[:-1]:
        t0 = time.perf_counter()
        result[name] = fn()
        print(f"[{name} done in {time.perf_counter() - t0:.0f} s]", file=sys.stderr, flush=True)
    result["wall_s"] = time.perf_counter() - started
    return result


def tables(r: dict) -> list[Table]:
    """The compiled run's one table, or the four tables of the eager run (WRN, MLPs, FLOP/s, init)."""
    if "skipped" in r:
        return []
    if "wrn_compiled" in r:
        c = r["wrn_compiled"]
        return [Table(f"WRN-40-10 under torch.compile, bf16 + channels_last, batch {BATCH}",
                      ["variant", "steps/s", "first call (compilation) s"],
                      [[v, f"{c['steps_per_s'][k]:.2f}", f"{c['first_call_s'][k]:.0f}"] for v, k in
                       (("WN (wninit)", "wninit"), ("BN", "bn"))],
                      [f"WN/BN time {c['wn_over_bn_time']:.2f}, spread {100 * c['spread']:.0f}%"])]
    f = r["flops"]
    return [
        Table(f"WRN-40-10, batch {BATCH}: training steps per second (median of rounds)",
              ["precision", "channels_last", "WN wninit", "WN torch", "BN", "WN/BN time", "spread"],
              [[w["precision"], w["channels_last"]] + [f"{w['steps_per_s'][v]:.2f}" for v in ("wninit", "torch", "bn")]
               + [f"{w['wn_over_bn_time']:.2f}", f"{100 * w['spread']:.0f}%"] for w in r["wrn"]]),
        Table(f"MLP step, batch {BATCH}, fp32: ms per step and ratio to plain",
              ["width", "depth", "plain ms", "torch", "wninit", "spread"],
              [[m["width"], m["depth"], f"{m['ms_per_step']['plain']:.2f}", f"{m['ratio']['torch']:.2f}",
                f"{m['ratio']['wninit']:.2f}", f"{100 * m['spread']:.0f}%"] for m in r["mlp"]]),
        Table("FLOP/s: MLP 512x10 training step (wninit) against an 8192^2 fp32 matmul (the ceiling)",
              ["batch", "TFLOP/s", "of ceiling"],
              [[b, f"{f[f'batch_{b}']['tflops']:.2f}", f"{100 * f[f'batch_{b}']['fraction_of_ceiling']:.1f}%"]
               for b in (128, 8192)], [f"ceiling: {f['ceiling_tflops']:.1f} TFLOP/s"]),
        Table("initialize vs orthogonal_ on the GPU (median of 3)", ["model", "layers", "initialize", "orthogonal_", "ratio"],
              [[i["model"], i["layers"], f"{i['seconds']['initialize']:.3f} s", f"{i['seconds']['orthogonal_']:.3f} s",
                f"{i['ratio']:.2f}"] for i in r["init"]]),
    ]


def table(r: dict) -> str:
    if "skipped" in r:
        return f"bench_gpu skipped: {r['skipped']}"
    return text(tables(r), f"{machine_line(r)}; {r['wall_s']:.0f} s")


if __name__ == "__main__":
    only = "--compiled" in sys.argv  # only the torch.compile comparison (compiling takes minutes)
    args = [a for a in sys.argv[1:] if a != "--compiled"]
    raise SystemExit(main(lambda quick: run(quick, only), table, "bench_gpu", __doc__.splitlines()[0], args))
