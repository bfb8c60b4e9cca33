"""Mini-batches from a split that lives on the device as one tensor, with batched augmentation.

The reference feeds torchvision's per-image ``RandomCrop(32, padding=4)``, ``RandomHorizontalFlip``
and optional Cutout(16) through a ``DataLoader`` with ``num_workers=0`` (spec §6.1). Here the same
transforms are drawn for a whole batch at once and applied by tensor indexing, with no per-sample
Python: crop and flip are one row gather from the padded batch (see :class:`_CropFlip`), cutout one
broadcast 0/1 mask.

All randomness (the epoch permutation, crop offsets, flips, cutout centres) comes from one
``torch.Generator``, so the same seed gives the same batches on the same device type.
"""
from __future__ import annotations

import math
from collections.abc import Iterator

import torch

from ..errors import UserError
from .sources import Split

__all__ = ["Loader", "random_crop_flip", "cutout", "cutout_", "cutout_area"]


class _CropFlip:
    """Random crop (``crop``-pixel padding) and flip for batches of up to ``b`` images of one shape.

    The batch is written into the interior of a padded buffer whose border is filled with the pad
    value once, when the buffer is made, and never written again. Each output row (image, channel, i)
    is then a window of W contiguous buffer elements starting at row ``dy + i``, column ``dx``; one
    ``index_select`` over the overlapping-windows view of the buffer crops the whole batch, reading one
    int64 per row, not per pixel. The flip is a ``lerp`` between the crops and their mirror with a 0/1
    weight per image (exact, and free of the host sync that selecting the flipped images would need).
    """

    def __init__(self, b: int, c: int, h: int, w: int, crop: int, flip: bool, pad_value, like: torch.Tensor):
        self.crop, self.flip, self.shape = crop, flip, (c, h, w)
        if crop == 0:
            return  # flip only: no buffer
        hp, self.row_len = h + 2 * crop, w + 2 * crop
        self.buf = like.new_zeros(b, c, hp, self.row_len)
        if pad_value is not None:
            self.buf += pad_value.to(like).view(1, c, 1, 1)
        ar = lambda n: torch.arange(n, device=like.device)  # noqa: E731
        # first element of each output row at offset 0: ((image*C + channel)*Hp + i) * row_len
        self.row_start = ((ar(b)[:, None, None] * c + ar(c)[:, None]) * hp + ar(h)) * self.row_len
        flat = self.buf.view(-1)
        self.windows = flat.as_strided((flat.numel() - w + 1, w), (1, 1))

    def __call__(self, x: torch.Tensor | None, generator: torch.Generator | None,
                 source: torch.Tensor | None = None, index: torch.Tensor | None = None) -> torch.Tensor:
        """Augment ``x``, or, saving a copy, ``source[index]`` gathered straight into the buffer."""
        (c, h, w), p = self.shape, self.crop
        b = len(x) if x is not None else len(index)
        dev = generator.device if generator is not None else (x if x is not None else source).device
        if p:
            interior = self.buf[:b, :, p:p + h, p:p + w]
            if x is not None:
                interior.copy_(x)
            elif source.device.type == "cpu":  # gather straight into the buffer: one pass less
                torch.index_select(source, 0, index, out=interior)
            else:
                interior.copy_(source.index_select(0, index))
            dy, dx = torch.randint(0, 2 * p + 1, (2, b), device=dev, generator=generator).to(self.buf.device)
            starts = self.row_start[:b] + (dy * self.row_len + dx).view(b, 1, 1)
            out = self.windows.index_select(0, starts.view(-1)).view(b, c, h, w)
        else:
            out = source.index_select(0, index) if x is None else x
        if self.flip:  # spec §6.1: RandomHorizontalFlip, p = 0.5, applied to the crop
            flipped = torch.randint(0, 2, (b,), device=dev, generator=generator).to(out)
            out = torch.lerp(out, out.flip(3), flipped.view(b, 1, 1, 1))
        return out


def random_crop_flip(x: torch.Tensor, crop: int, flip: bool, generator: torch.Generator | None = None,
                     pad_value: torch.Tensor | None = None) -> torch.Tensor:
    """Random ``crop``-pixel-padded crops of a batch, each flipped horizontally with p = 0.5.

    As ``RandomCrop(H, padding=crop)`` then ``RandomHorizontalFlip()`` per image (spec §6.1): offsets
    uniform over {0..2*crop} in each axis (a shift of -crop..crop), padding filled with ``pad_value``
    (C,) or 0, the flip applied to the crop. Returns a new tensor.
    """
    if crop == 0 and not flip:
        return x.clone()
    b, c, h, w = x.shape
    return _CropFlip(b, c, h, w, crop, flip, pad_value, x)(x, generator)


def cutout_(x: torch.Tensor, size: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Zero a ``size`` x ``size`` square in every image of the batch, in all channels, in place.

    As DeVries & Taylor's Cutout used by the reference (spec §6.1): the centre (cy, cx) is a uniform
    random pixel; rows ``[cy - size//2, cy + size//2)`` and likewise columns, clipped at the borders,
    are set to 0 (after normalization). For odd ``size`` the hole is ``size - 1`` wide, as there.
    The hole is applied as a multiplication by a 0/1 mask (finite data, as every Split holds).
    """
    b, _, h, w = x.shape
    dev = generator.device if generator is not None else x.device
    cy = torch.randint(0, h, (b, 1), device=dev, generator=generator).to(x.device)
    cx = torch.randint(0, w, (b, 1), device=dev, generator=generator).to(x.device)
    half = size // 2
    ys, xs = torch.arange(h, device=x.device), torch.arange(w, device=x.device)
    # pixel k is in [c - half, c + half) iff |k - c + 0.5| < half; clipping at the borders is implicit.
    # A pixel is kept if it lies outside the hole's rows or outside its columns.
    keep_y = ((ys - cy + 0.5).abs_() >= half).to(x.dtype)  # (b, h)
    keep_x = ((xs - cx + 0.5).abs_() >= half).to(x.dtype)  # (b, w)
    keep = torch.maximum(keep_y[:, :, None], keep_x[:, None, :])  # (b, h, w), 0 inside the hole
    return x.mul_(keep[:, None])


def cutout(x: torch.Tensor, size: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """:func:`cutout_` on a copy of ``x``."""
    return cutout_(x.clone(), size, generator)


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
        self._crop_flip = None  # made on the first batch: a persistent buffer (see _CropFlip)

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
            if self.crop or self.flip:
                if self._crop_flip is None:
                    self._crop_flip = _CropFlip(self.batch_size, *self.x.shape[1:], self.crop, self.flip,
                                                self.pad_value, self.x)
                x = self._crop_flip(None, g, self.x, idx)
            else:
                x = self.x.index_select(0, idx)  # on CPU several times faster than self.x[idx]
            if self.cutout:
                x = cutout_(x, self.cutout, g)
            yield x, self.y.index_select(0, idx)
