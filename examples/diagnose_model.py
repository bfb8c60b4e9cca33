"""Diagnose a model at initialization: how the signal's norm travels forward and backward, and its plot.

Arpit, Campos & Bengio (2019), docs/method.md §3.1-§3.4: under the proposed init the forward ratio
||h_i|| / ||x|| stays near the value it has after the first layer (2.45 here, where 784 inputs meet 256
units), between 2.3 and 3.2 through all 30 layers, and the backward ratio ||dL/dh_i|| / ||dL/dh_L|| between
0.8 and 1.05; under PyTorch's default WN init (g = ||v||) both shrink layer after layer, to about 4e-5
at the far end. Both are per position (docs/diagnostics.md; an MLP has one). Writes propagation.png and propagation.csv to the
current folder. A few seconds on a laptop CPU (the plot needs matplotlib, `pip install 'wninit[suite]'`).
"""
import torch

import wninit
from wninit.diagnostics import plot_propagation, propagation


def main():
    torch.manual_seed(0)  # the classifier head keeps PyTorch's default init, drawn from the global stream
    inputs = torch.randn(64, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    for scheme in ("proposed", "pytorch-default"):
        model = wninit.models.MLP(784, 256, depth=30, num_classes=10)  # 30 WN layers, each followed by a ReLU
        wninit.initialize(model, scheme, generator=torch.Generator().manual_seed(0))
        table = propagation(model, inputs)  # the ReLUs the model marks with wninit.structure.roles.mark_probe
        last = table.rows[-1]
        print(f"{scheme}: at layer {last.index}, forward {last.forward_mean:.3g}, backward at layer 1 "
              f"{table.rows[0].backward_mean:.3g}")
        if scheme == "proposed":
            print(table)
            table.to_csv("propagation.csv")
            print("wrote", plot_propagation(table, "propagation.png", title="WN MLP, depth 30, proposed init"))


if __name__ == "__main__":
    main()
