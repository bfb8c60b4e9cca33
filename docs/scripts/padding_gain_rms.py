"""The per-unit RMS through the paper's 50-layer WN CNN on 7x7 maps (28x28 inputs, width 16, proposed, orthogonal),
layer by layer, for three draws: the paper's gain, the padding-aware gain (wninit.init.padding) and, for reference,
the paper's gain with circular padding (a map without border). Prints the ratio last/first 7x7 layer and writes
docs/padding_gain_rms.png. Run from the repository root: python docs/scripts/padding_gain_rms.py
"""
import math

import torch

from wninit import initialize, models
from wninit.init.padding import padding_aware_gains_

MODES = ("paper gain", "padding-aware gain", "paper gain, circular padding")


def rms_by_layer(seed: int, mode: str, width: int = 16, depth: int = 50) -> list[float]:
    torch.manual_seed(seed)
    model = models.CNN(1, width, depth, 10)
    initialize(model, "proposed", generator=torch.Generator().manual_seed(seed))
    x = torch.randn(32, 1, 28, 28, generator=torch.Generator().manual_seed(100 + seed))
    if mode == MODES[1]:
        padding_aware_gains_(model, x)
    if mode == MODES[2]:
        for m in model.modules():
            if isinstance(m, torch.nn.Conv2d):
                m.padding_mode = "circular"
    out = []
    hooks = [m.register_forward_hook(lambda m, i, o: out.append(math.sqrt(float(o.pow(2).mean()))))
             for m in model.features if isinstance(m, torch.nn.ReLU)]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return out


def main():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for mode, colour in zip(MODES, ("#1f4e9c", "#c0392b", "#888888")):
        for seed in (0, 1, 2):
            rms = rms_by_layer(seed, mode)
            ratios = [r / rms[1] for r in rms]  # layer index 1 is the first 7x7 map
            print(f"{mode:<30} seed {seed}: RMS ratio layer 50 / layer 2 = {ratios[-1]:.3f}")
            ax.semilogy(range(1, len(rms) + 1), ratios, color=colour, label=mode if seed == 0 else None)
    ax.set_xlabel("layer")
    ax.set_ylabel("per-unit RMS / at layer 2")
    ax.set_title("WN CNN, width 16, 7x7 maps, proposed (orthogonal), 3 draws")
    ax.legend()
    fig.tight_layout()
    fig.savefig("docs/padding_gain_rms.png", dpi=100)


if __name__ == "__main__":
    main()
