"""Mini-batches from a split that lives on the device as one tensor, with batched augmentation.

The reference feeds torchvision's per-image ``RandomCrop(32, padding=4)``, ``RandomHorizontalFlip``
and optional Cutout(16) through a ``DataLoader`` with ``num_workers=0`` (spec §6.1). Here the same
transforms are drawn for a whole batch at once and applied by tensor indexing, with no per-sample
Python: crop and flip are one gather from the padded batch, cutout one broadcast mask.

All randomness (the epoch permutation, crop offsets, flips, cutout centres) comes from one
``torch.Generator``, so the same seed gives the same batches on the same device type.
"""
from __future__ import annotations

import math
from collections.abc import Iterator

import torch

from ..errors import UserError
from .sources import Split

__all__ = ["Loader", "random_crop_flip", "cutout", "cutout_area"]


def random_crop_flip(x: torch.Tensor, crop: int, flip: bool, generator: torch.Generator | None = None,
                     pad_value: torch.Tensor | None = None) -> torch.Tensor:
    """Random ``crop``-pixel-padded crops of a batch, each flipped horizontally with p = 0.5.

    As ``RandomCrop(H, padding=crop)`` then ``RandomHorizontalFlip()`` per image: offsets uniform over
    {0..2*crop} in each axis (a shift of -crop..crop), padding filled with ``pad_value`` (C,) or 0.
    The batch is padded once; rows ``dy + i`` and columns ``dx + j`` (or ``dx + W-1-j`` if flipped)
    are then gathered for every image by one advanced-indexing call.
    """
    b, c, h, w = x.shape
    dev = generator.device if generator is not None else x.device
    if crop == 0:  # flip only: a select between the batch and its mirror is enough
        if not flip:
            return x
        flipped = torch.rand(b, device=dev, generator=generator).to(x.device) < 0.5
        return torch.where(flipped[:, None, None, None], x.flip(3), x)
    padded = x.new_zeros(b, c, h + 2 * crop, w + 2 * crop)
    if pad_value is not None:
        padded += pad_value.to(x).view(1, c, 1, 1)
    padded[:, :, crop:crop + h, crop:crop + w] = x
    dy, dx = torch.randint(0, 2 * crop + 1, (2, b), device=dev, generator=generator).to(x.device)
    cols = torch.arange(w, device=x.device).expand(b, w)
    if flip:  # flipping the crop: column j of the output is column W-1-j of the crop
        flipped = torch.rand(b, device=dev, generator=generator).to(x.device) < 0.5
        cols = torch.where(flipped[:, None], cols.flip(1), cols)
    rows = dy[:, None] + torch.arange(h, device=x.device)
    cols = dx[:, None] + cols
    batch = torch.arange(b, device=x.device)[:, None, None, None]
    chan = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[batch, chan, rows[:, None, :, None], cols[:, None, None, :]]


def cutout(x: torch.Tensor, size: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Zero a ``size`` x ``size`` square in every image of the batch, in all channels (a new tensor).

    As DeVries & Taylor's Cutout used by the reference (spec §6.1): the centre (cy, cx) is a uniform
    random pixel; rows ``[cy - size//2, cy + size//2)`` and likewise columns, clipped at the borders,
    are set to 0 (after normalization). For odd ``size`` the hole is ``size - 1`` wide, as there.
    """
    b, _, h, w = x.shape
    dev = generator.device if generator is not None else x.device
    cy = torch.randint(0, h, (b,), device=dev, generator=generator).to(x.device)
    cx = torch.randint(0, w, (b,), device=dev, generator=generator).to(x.device)
    half = size // 2
    ys, xs = torch.arange(h, device=x.device), torch.arange(w, device=x.device)
    in_y = (ys >= (cy - half)[:, None]) & (ys < (cy + half)[:, None])  # (b, h); clipping is implicit
    in_x = (xs >= (cx - half)[:, None]) & (xs < (cx + half)[:, None])  # (b, w)
    hole = in_y[:, None, :, None] & in_x[:, None, None, :]
    return x.masked_fill(hole, 0.0)


def cutout_area(size: int, h: int, w: int) -> float:
    """The expected number of pixels :func:`cutout` zeroes in an h x w image: E[len_y] * E[len_x].

    The clipped lengths in the two axes are independent, so the mean area is the product of the mean
    lengths, each an average over the h (or w) possible centres.
    """
    half = size // 2

    def mean_len(n: int) -> float:
        return sum(min(c + half, n) - max(c - half, 0) for c in range(n)) / n

    return mean_len(h) * mean_len(w)


class Loader:
    """Batches ``(x, y)`` of a :class:`Split`, on ``device``, augmented in batch.

    Args:
        split: the data; it is moved to ``device`` once, here.
        batch_size: images per batch.
        shuffle: a new permutation from ``generator`` each epoch; else the split's order.
        crop: random crop with this much padding (the reference's 4 for CIFAR), 0 for none.
        flip: random horizontal flip with p = 0.5.
        cutout: side of the Cutout hole (the reference's 16), 0 for none.
        generator: the source of all randomness; None draws a seed from torch's global RNG.
        drop_last: drop the last, smaller batch.

    Examples:
        >>> ds = load_dataset("synthetic", synthetic_size=256)
        >>> for x, y in Loader(ds.train, 64, crop=4, flip=True, generator=torch.Generator().manual_seed(0)): ...
    """

    def __init__(self, split: Split, batch_size: int, *, shuffle: bool = True, crop: int = 0,
                 flip: bool = False, cutout: int = 0, generator: torch.Generator | None = None,
                 device="cpu", drop_last: bool = False):
        if int(batch_size) < 1 or crop < 0 or cutout < 0:
            raise UserError(f"batch_size must be >= 1 and crop, cutout >= 0, got {batch_size}, {crop}, {cutout}")
        if (crop or flip or cutout) and split.x.dim() != 4:
            raise UserError(f"crop, flip and cutout need images (N, C, H, W), got shape {tuple(split.x.shape)}; "
                            "turn augmentation off for this data")
        self.device = torch.device(device)
        self.x, self.y = split.x.to(self.device), split.y.to(self.device)
        pad = getattr(split, "pad_value", None)
        self.pad_value = pad.to(self.device) if pad is not None else None
        self.batch_size, self.shuffle, self.drop_last = int(batch_size), shuffle, drop_last
        self.crop, self.flip, self.cutout = int(crop), bool(flip), int(cutout)
        if generator is None:  # deterministic under torch.manual_seed, like the reference's set_seed
            seed = int(torch.randint(0, 2**62, (1,)).item())
            generator = torch.Generator(self.device).manual_seed(seed)
        self.generator = generator

    def __len__(self) -> int:
        n = len(self.y)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n, g = len(self.y), self.generator
        if self.shuffle:
            order = torch.randperm(n, device=g.device, generator=g).to(self.device)
        else:
            order = torch.arange(n, device=self.device)
        for i in range(len(self)):
            idx = order[i * self.batch_size:(i + 1) * self.batch_size]
            x = self.x[idx]
            if self.crop or self.flip:
                x = random_crop_flip(x, self.crop, self.flip, g, self.pad_value)
            if self.cutout:
                x = cutout(x, self.cutout, g)
            yield x, self.y[idx]
