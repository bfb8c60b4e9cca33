"""The zoo table of docs/zoo.md: every zoo model initialized with an example input, measured on it.

Run from the repository root: ``PYTHONPATH=src:tests python -m zoo.table [--out docs/zoo.md]``. Each row:
the WN layers; how the model was traced (``fx`` when torch.fx can, else ``by running``); the layers whose g was
predicted / measured (docs/method.md §3.10), those on an "outside the theory" rule and those left at the
default; each stage's forward per-position norm ratio over its target (min..max) under the proposed init, under
the prediction alone (the measured layers set back to their predicted g), and the raw ratio under the model's
own init; the backward ratio (min..max) under the proposed init; the time of ``initialize``.
"""
from __future__ import annotations

import argparse
import math
import time
import warnings
from dataclasses import dataclass

import torch

import wninit
from wninit.init.gains import layer_gain
from wninit.structure.record import _flat_tensors, record
from wninit.structure.trace import TraceFailure, discover
from wninit.weightnorm.access import is_weight_normed, set_g_, wn_dim

from . import ALL_ZOO as ZOO
from .measure import stage_ratios


@dataclass(frozen=True)
class ZooRow:
    name: str
    wn_layers: int
    traced: str
    predicted: int
    measured: int
    outside: int
    default: int
    uncalled: int  # WN layers the forward pass never calls (left at the default, named by a warning)
    proposed: tuple[float, float]  # min..max of forward ratio / target
    prediction_alone: tuple[float, float]
    own_default: tuple[float, float]  # raw forward ratio under the model's own init
    lsuv: tuple[float, float]  # forward ratio / target under LSUV (weight norm folded away: a plain model)
    lsuv_backward: tuple[float, float]
    backward: tuple[float, float]
    backward_stage: tuple[float, float]  # the stages' own backward (an iid cotangent at each last sum)
    init_seconds: float
    nan: bool


def _span(values) -> tuple[float, float]:
    values = [v for v in values if not math.isnan(v)]
    return (min(values), max(values)) if values else (float("nan"), float("nan"))


def _traced(model) -> str:
    try:
        discover(model)
        return "fx"
    except TraceFailure:
        return "by running"


def builders() -> dict:
    """``name -> build() -> (model, example_inputs)``: the re-implementations and, when installed, transformers'."""
    out = {}
    for name, (build, shape) in ZOO.items():
        out[name] = (lambda b=build, s=shape: (b(), torch.randn(s, generator=torch.Generator().manual_seed(1))))
    try:
        from .hf import HF_ZOO
    except ImportError:
        return out
    return {**out, **HF_ZOO}


def _fresh(build):
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return build()


def lsuv_ratios(build, structure) -> list:
    """The stage ratios of the same model under LSUV (residual-blind: every layer's output to unit variance on
    the example input, docs/peers.md), its weight norm folded into plain weights first (LSUV is for plain
    networks), measured on the stages ``structure`` found in the weight-normed model."""
    model, x = _fresh(build)
    wninit.remove_weight_norm(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # normalization layers kept: LSUV's paper trains without them
        wninit.peers.apply(model, "lsuv", example_inputs=x, generator=torch.Generator().manual_seed(0))
    return stage_ratios(model, structure, x)


def zoo_row(name: str, build) -> ZooRow:
    model, x = _fresh(build)
    traced = _traced(model)
    s0 = discover(model, example_inputs=x)
    own = stage_ratios(model, s0, x)
    lsuv = lsuv_ratios(build, s0)
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        records = wninit.initialize(model, "proposed", example_inputs=x, generator=torch.Generator().manual_seed(0))
    seconds = time.perf_counter() - start
    uncalled = any("does not call them" in str(w.message) for w in caught)
    s = discover(model, example_inputs=x)
    proposed = stage_ratios(model, s, x, stage_backward=True)
    out = record(model, x).output
    nan = any(not torch.isfinite(t).all() for t in _flat_tensors(out) if t.is_floating_point())
    for r in records:  # the prediction alone: measured layers back to their predicted g
        if r.gain_from == "measured":
            layer = model.get_submodule(r.name)
            set_g_(layer, layer_gain(layer, r.gamma, wn_dim(layer)))
    alone = stage_ratios(model, s, x)
    return ZooRow(name, sum(is_weight_normed(m) for m in model.modules()), traced,
                  sum(r.gain_from == "predicted" and r.source != "default" for r in records),
                  sum(r.gain_from == "measured" for r in records), sum("outside the theory" in r.rule for r in records),
                  sum(r.source == "default" for r in records), sum(r.source == "default" for r in records) if uncalled else 0,
                  _span(r.relative for r in proposed), _span(r.relative for r in alone),
                  _span(r.forward for r in own), _span(r.relative for r in lsuv), _span(r.backward for r in lsuv),
                  _span(r.backward for r in proposed), _span(r.backward_stage / r.target for r in proposed), seconds,
                  nan)


def _fmt(span) -> str:
    return "-" if math.isnan(span[0]) else f"{span[0]:.3f}..{span[1]:.3f}"


def render(rows: list[ZooRow]) -> str:
    head = ("| model | WN | traced | predicted / measured / outside / default | fwd/target proposed | "
            "fwd/target prediction alone | fwd/target LSUV | fwd own init | bwd proposed | stage bwd/target proposed | "
            "bwd LSUV | init s |\n|" + "---|" * 12)
    body = [f"| {r.name} | {r.wn_layers} | {r.traced} | {r.predicted} / {r.measured} / {r.outside} / {r.default}"
            f"{f' ({r.uncalled} never called)' if r.uncalled else ''} | {_fmt(r.proposed)} | {_fmt(r.prediction_alone)} | "
            f"{_fmt(r.lsuv)} | {_fmt(r.own_default)} | {_fmt(r.backward)} | {_fmt(r.backward_stage)} | {_fmt(r.lsuv_backward)} | "
            f"{r.init_seconds:.2f} |" for r in rows]
    return "\n".join([head, *body])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="write the markdown table here (default: print it)")
    parser.add_argument("--only", nargs="*", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = [zoo_row(name, build) for name, build in builders().items() if not args.only or name in args.only]
    text = render(rows)
    if args.out:
        from wninit.suite._files import atomic_write_text

        atomic_write_text(args.out, _PAGE.format(table=text))
    print(text)


_PAGE = """# The zoo: one call on models nobody here wrote

Generated by `PYTHONPATH=src:tests python -m zoo.table --out docs/zoo.md` (one torch thread; the init times were
taken on a shared 2-core machine and are indicative only). Every model is initialized by
`wninit.initialize(model, "proposed", example_inputs=x)` with its example input `x`, then measured on `x` by
`tests/zoo/measure.py`. Columns: WN layers; how torch.fx fares (`fx`: it traces; `by running`: it fails, the
model is discovered from one forward pass, docs/method.md §3.9); layers whose g is predicted / measured (§3.10) /
on an "outside the theory" rule / left at the default; per stage of residual sums, the forward per-position norm
ratio over its target (min..max over the stages) under the proposed init, under the prediction alone (measured
layers set back to their predicted g), under LSUV (the same model with its weight norm folded into plain weights,
`wninit.peers.apply(model, "lsuv", example_inputs=x)`: every layer's output at unit variance on `x`, blind to the
residual structure), and the raw ratio under the model's own init; the backward ratio
`||dL/d stream in|| / ||dL/d stage out||` per position for a Gaussian cotangent at the model's output, under the
proposed init; the stage's own backward over its target (an iid Gaussian cotangent over every position of the
stage's last sum, taken back to its input through the stream only; proposed init); the backward ratio under
LSUV; the time of `initialize`. `-`: the model has no residual stage (feed-forward, or a speech encoder whose one
WN layer is a positional conv).

{table}

The `hf_*` rows are `transformers` models built from small configs with random weights (tests/zoo/hf.py): every
model of transformers 5.23 whose code applies weight norm, but Higgs-Audio-v2's tokenizer, which imports
torchaudio (not installable next to the CPU torch wheel; its layers are X-Codec's). Layers a forward never calls
are named in a warning and left at the default: `hf_wav2vec2_conformer`'s positional convolution (the conformer
uses its own position embeddings) and `hf_vits`'s posterior encoder (run in training only). UnivNet's
location-variable residual blocks add a branch whose kernel is predicted from the spectrogram: not a residual
sum of the stream alone, so its stages are not counted (its kernel predictor's residual blocks are), and the
layers of that branch are in the `outside` column, their rule saying "in a branch that also reads another input"
(as are DAC's and EnCodec's quantizer projections, which a codebook lookup or its distance follows). DAC's and
X-Codec's Snake activations are known by their class (`gamma = 1/E[snake(z)^2]`, docs/method.md §3.7).

**Backward.** Where `bwd proposed` is far above the forward target (ViT, WaveNet, VITS's flows) the gradient
enters the stream where the forward rule does not look: WaveNet's and VITS's skip outputs inject the loss's
gradient at every block, and a ViT's classifier reads the class token alone, so at the last sum the gradient sits
on one position that attention spreads over all. The `stage bwd/target` column removes that: what is left is the
branches' own asymmetry (GELU, gates, softmax and LayerNorm are not positively homogeneous, so their backward
energy factor `E[phi'(z)^2]` is not the forward one `E[phi(z)^2]`). docs/method.md §3.10 derives both; neither is
a gain a forward rule on the stream can set.

**LSUV.** Blind to the residual structure, LSUV sets every layer's output to unit variance, so a branch whose
last layer feeds the sum directly adds about as much as its stream: its forward ratio per stage is up to 3.5x
the target (ResNeXt; WaveNet 2.7x, the Mixer 2.5x) and its backward ratio 2.8-8.5x the proposed init's on
WaveNet, the Mixer and the ViT (31, 5.3 and 103 per stage). Where the model's own layer scale sets the
branch's share LSUV lands where the model puts it (ConvNeXt 1.00); on the speech encoders' one sum (the
positional convolution) it is below the target (0.82-0.84).
"""

if __name__ == "__main__":
    main()
