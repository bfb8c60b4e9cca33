"""Prototype, not shipped: wninit's WN Linear as a C++ autograd node, timed against plain and the shipped layer.

Issue 7 asks for a WN training step within 1.10x of the plain layer's. This measures what native code
would buy (README, Performance, "Also measured"): the whole layer (WN, addmm, bias) as one C++ autograd
node built with ``torch.utils.cpp_extension.load_inline``, with either ATen's WN backward kernel
(``--kernel aten``, gradients equal to the shipped layer bit for bit) or a hand-written one that reads the
weight ``w`` (warm: the linear's backward has just read it) instead of the direction ``v`` (cold: last
touched by the previous optimizer step), ``--kernel warm``. With w = g v/||v|| and v/||v|| = w/g:
grad_g = <grad_w, w>/g and grad_v = (g/||v||)(grad_w - (grad_g/g) w), per output unit (v where g = 0).

Needs a C++ compiler and ninja (JIT build, about 30 s, cached in --build); not part of ``wninit bench``,
whose benchmarks need nothing but the package. Each size prints plain / shipped / native step times and
the two ratios (medians of interleaved rounds).
Run: ``python benchmarks/proto_native_wn.py [--kernel aten|warm] [--threads N] [--sizes 128x10,128x50]``.
"""
from __future__ import annotations

import argparse
import os
import sys
import types

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_wn import _stepper  # noqa: E402  (the very step bench_wn times, so the ratios compare)
from common import build_variant, num_threads, summary, time_interleaved  # noqa: E402

SOURCE = r"""
#include <torch/extension.h>
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// grad_v, grad_g from grad_w and the warm w (v only for rows with g == 0, where w has no direction).
static variable_list warm_backward(const at::Tensor& gw, const at::Tensor& w, const at::Tensor& v,
                                   const at::Tensor& g, const at::Tensor& norms) {
  auto gv = torch::empty_like(v);
  auto gg = torch::empty_like(g);
  const int64_t rows = w.size(0), cols = w.numel() / rows;
  const float *pw = w.data_ptr<float>(), *pgw = gw.data_ptr<float>(), *pv = v.data_ptr<float>();
  const float *pg = g.data_ptr<float>(), *pn = norms.data_ptr<float>();
  float *pgv = gv.data_ptr<float>(), *pgg = gg.data_ptr<float>();
  for (int64_t i = 0; i < rows; ++i) {
    const float* gwi = pgw + i * cols;
    float* gvi = pgv + i * cols;
    const float gi = pg[i], ni = pn[i];
    const float* di = gi == 0.f ? pv + i * cols : pw + i * cols;  // the row's direction, scaled
    const float di_norm = gi == 0.f ? ni : gi;
    float dot = 0.f;
    #pragma omp simd reduction(+:dot)
    for (int64_t j = 0; j < cols; ++j) dot += gwi[j] * di[j];
    const float ggi = dot / di_norm, a = gi / ni, c = a * ggi / di_norm;
    pgg[i] = ggi;
    #pragma omp simd
    for (int64_t j = 0; j < cols; ++j) gvi[j] = a * gwi[j] - c * di[j];
  }
  return {gv, gg};
}

struct WNLinearFn : public torch::autograd::Function<WNLinearFn> {
  static at::Tensor forward(AutogradContext* ctx, at::Tensor x, at::Tensor v, at::Tensor g, at::Tensor b, bool warm) {
    auto wn = at::_weight_norm_interface(v, g.view({-1, 1}), 0);
    auto w = std::get<0>(wn), norms = std::get<1>(wn);
    ctx->save_for_backward({x, w, v, g, norms});
    ctx->saved_data["warm"] = warm;
    return torch::addmm(b, x, w.t());
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto s = ctx->get_saved_variables();
    auto x = s[0], w = s[1], v = s[2], g = s[3], norms = s[4];
    auto gy = grads[0];
    auto gx = gy.mm(w), gw = gy.t().mm(x), gb = gy.sum(0);
    if (ctx->saved_data["warm"].toBool()) {
      auto r = warm_backward(gw, w, v, g, norms);
      return {gx, r[0], r[1], gb, at::Tensor()};
    }
    auto r = at::_weight_norm_interface_backward(gw, v, g.view({-1, 1}), norms, 0);
    return {gx, std::get<0>(r), std::get<1>(r).view({-1}), gb, at::Tensor()};
  }
};

at::Tensor wn_linear(at::Tensor x, at::Tensor v, at::Tensor g, at::Tensor b, bool warm) {
  return WNLinearFn::apply(x, v, g, b, warm);
}
"""


def _native_model(ext, size, warm: bool):
    from wninit.weightnorm import WNLinear

    def forward(layer, x):
        p = layer._parameters
        return ext.wn_linear(x, p["v"], p["g"], p["bias"], warm)

    model = build_variant("mlp", size, "wninit")
    for layer in model.modules():
        if isinstance(layer, WNLinear):
            layer.forward = types.MethodType(forward, layer)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kernel", choices=("aten", "warm"), default="warm")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--sizes", default="128x10,128x50,128x200", help="width x depth, comma-separated")
    parser.add_argument("--build", default=os.path.join("wninit-out", "native_wn_build"))
    args = parser.parse_args()
    from torch.utils.cpp_extension import load_inline

    os.makedirs(args.build, exist_ok=True)
    ext = load_inline("wninit_native_wn", cpp_sources=SOURCE, functions=["wn_linear"], build_directory=args.build,
                      extra_cflags=["-O3", "-fopenmp-simd"])
    warm = args.kernel == "warm"
    native, shipped = _native_model(ext, (128, 5), warm), build_variant("mlp", (128, 5), "wninit")
    x = torch.randn(16, 784)
    native(x).square().sum().backward()
    shipped(x).square().sum().backward()
    rel = max(((p.grad - q.grad).abs().max() / q.grad.abs().max()).item()
              for p, q in zip(native.parameters(), shipped.parameters()))
    print(f"gradients vs the shipped layer: largest relative difference {rel:.1e}")
    if rel > 1e-5:  # a faster wrong layer is no result: stop before timing it
        raise SystemExit("the native layer's gradients differ from the shipped layer's: not timing it")
    torch.set_flush_denormal(True)
    with num_threads(args.threads):
        for size in [tuple(int(n) for n in s.split("x")) for s in args.sizes.split(",")]:
            x = torch.randn(128, 784)
            variants = {"plain": _stepper(build_variant("mlp", size, "plain"), x),
                        "wninit": _stepper(build_variant("mlp", size, "wninit"), x),
                        "native": _stepper(_native_model(ext, size, warm), x)}
            samples = time_interleaved(variants, 11, number=max(1, 30 // size[1]), warmup=2)
            med = {k: summary(v)["median"] for k, v in samples.items()}
            print(f"MLP {size[0]}x{size[1]}, {args.threads} thread(s): "
                  + ", ".join(f"{k} {v * 1e3:.2f} ms" for k, v in med.items())
                  + f"; wninit/plain {med['wninit'] / med['plain']:.3f}, native/plain {med['native'] / med['plain']:.3f}")


if __name__ == "__main__":
    main()
