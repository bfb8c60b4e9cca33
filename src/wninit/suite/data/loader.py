"""Mini-batches from a split that lives on the device as one tensor, with batched augmentation.

The reference feeds torchvision's per-image `RandomCrop(32, padding=4)`, `RandomHorizontalFlip`
and optional Cutout(16) through a `DataLoader` with `num_workers=0` (docs/method.md §6.1). Here the same
transforms are drawn for a whole batch at once and applied by tensor indexing, with no per-sample
Python: crop and flip together are one row gather from a padded buffer (see `_CropFlip`),
cutout one multiplication by 0/1 masks looked up in a table of all holes.

A split of uint8 images (`Split.raw`) is augmented as uint8, 4x fewer bytes to move, and each batch
normalized after the gather with the split's own `normalize_raw`: the batches are bit for bit
those of the float path.

All randomness (the epoch permutation, crop offsets, flips, cutout centres) comes from one
`torch.Generator`, so the same seed gives the same batches on the same device type.
"""
from __future__ import annotations

import math
from collections.abc import Iterator

import torch

from wninit.errors import UserError
from wninit.suite.data.sources import Split, normalize_raw

__all__ = ["Loader", "random_crop_flip", "cutout", "cutout_", "cutout_area"]

# Cutout looks its 0/1 masks up in a table of every centre's mask when the table is at most this many
# elements (32 x 32 images: 1024 masks, 1 MiB); larger images build the masks per batch.
HOLE_TABLE_MAX = 2**22


class _CropFlip:
    """Random crop (`crop`-pixel padding) and flip of images gathered from `source` (N, C, H, W).

    Each batch is gathered into the interior of a padded buffer whose border is filled with the pad
    value once, when the buffer is made, and never written again. Each output row (image, channel, i)
    is then a window of W contiguous buffer elements starting at row `dy + i`, column `dx`; one
    `index_select` over the overlapping-windows view of the buffer crops the whole batch, reading one
    int64 per row, not per pixel.

    For a 1-byte source (uint8 images) the flip is folded into the same gathers: the source is kept
    with its mirror images appended (N..2N-1), a flipped image is gathered from its mirror, and the crop
    of a mirrored padded image at column `2*crop - dx` is the mirror of the crop at `dx`. For wider
    types that copy would cost as much again as the split itself, so the flip is a `lerp` between the
    crops and their mirror with a 0/1 weight per image (exact, and free of the host sync that selecting
    the flipped images would need).
    """

    def __init__(self, source: torch.Tensor, b: int, crop: int, flip: bool, pad_value=None):
        self.n, c, h, w = source.shape
        self.crop, self.flip, self.shape = crop, flip, (c, h, w)
        self.mirror_source = flip and source.element_size() == 1
        self.source = torch.cat([source, source.flip(3)]) if self.mirror_source else source
        if crop == 0:
            return  # one gather from the source: no buffer
        hp, self.row_len = h + 2 * crop, w + 2 * crop
        self.buf = source.new_zeros(b, c, hp, self.row_len)
        if pad_value is not None:
            self.buf += pad_value.to(self.buf).view(1, c, 1, 1)
        ar = lambda n: torch.arange(n, device=source.device)  # noqa: E731
        # first element of each output row at offset 0: ((image*C + channel)*Hp + i) * row_len
        self.row_start = ((ar(b)[:, None, None] * c + ar(c)[:, None]) * hp + ar(h)) * self.row_len
        flat = self.buf.view(-1)
        self.windows = flat.as_strided((flat.numel() - w + 1, w), (1, 1))
        self.interior = self.buf[:, :, crop:crop + h, crop:crop + w]
        self.gathered = source.new_empty((b, c, h, w))  # ours alone: copied into the buffer right away

    def __call__(self, index: torch.Tensor, generator: torch.Generator | None,
                 out: torch.Tensor | None = None) -> torch.Tensor:
        """Crops (and flips) of `source[index]` in the source's dtype, into `out` (contiguous) if given."""
        (c, h, w), p, b, src = self.shape, self.crop, len(index), self.source
        if p:  # the reference's order of draws: crop offsets, then the flip (docs/method.md §6.1)
            dy, dx = _randint(2 * p + 1, (2, b), generator, src.device)
        if self.flip:  # docs/method.md §6.1: RandomHorizontalFlip, p = 0.5, applied to the crop
            flipped = _randint(2, (b,), generator, src.device)
            if self.mirror_source:
                index = index + self.n * flipped
        lerp = self.flip and not self.mirror_source
        if lerp:  # the crops are only read by the lerp below: a buffer of ours, written every batch
            if getattr(self, "crops", None) is None or len(self.crops) < b:
                self.crops = src.new_empty((b, c, h, w))
            crops = self.crops[:b]
        else:
            crops = src.new_empty((b, c, h, w)) if out is None else out
        if not p:
            torch.index_select(src, 0, index, out=crops)
        else:
            # A gather into a contiguous tensor copies whole images, then one copy into the interior: on
            # CPU faster than gathering straight into the strided interior (docs/performance.md)
            gathered = torch.index_select(src, 0, index, out=self.gathered[:b])
            (self.interior[:b] if b < len(self.interior) else self.interior).copy_(gathered)
            if self.mirror_source:  # a flipped image's crop: its mirror's at column 2p - dx
                dx = dx.mul(-2).add_(2 * p).mul_(flipped).add_(dx)
            offset = (dy * self.row_len).add_(dx)
            starts = (self.row_start[:b] if b < len(self.row_start) else self.row_start) + offset.view(b, 1, 1)
            torch.index_select(self.windows, 0, starts.view(-1), out=crops.view(b * c * h, w))
        if not lerp:
            return crops
        weight = flipped.to(crops).view(b, 1, 1, 1)
        return torch.lerp(crops, crops.flip(3), weight, out=crops.new_empty(crops.shape) if out is None else out)


def random_crop_flip(x: torch.Tensor, crop: int, flip: bool, generator: torch.Generator | None = None,
                     pad_value: torch.Tensor | None = None) -> torch.Tensor:
    """Random `crop`-pixel-padded crops of a batch, each flipped horizontally with p = 0.5.

    As `RandomCrop(H, padding=crop)` then `RandomHorizontalFlip()` per image (docs/method.md §6.1): offsets
    uniform over {0..2*crop} in each axis (a shift of -crop..crop), padding filled with `pad_value`
    (C,) or 0, the flip applied to the crop. Returns a new tensor.
    """
    if crop == 0 and not flip:
        return x.clone()
    return _CropFlip(x, len(x), crop, flip, pad_value)(torch.arange(len(x), device=x.device), generator)


def _keep_masks(cy: torch.Tensor, cx: torch.Tensor, size: int, h: int, w: int, dtype) -> torch.Tensor:
    """(b, h, w) masks, 0 inside the Cutout hole centred at (cy[k], cx[k]) (each (b, 1)), 1 elsewhere."""
    half = size // 2
    ys, xs = torch.arange(h, device=cy.device), torch.arange(w, device=cy.device)
    # pixel k is in [c - half, c + half) iff |k - c + 0.5| < half; clipping at the borders is implicit.
    # A pixel is kept if it lies outside the hole's rows or outside its columns.
    keep_y = ((ys - cy + 0.5).abs_() >= half).to(dtype)  # (b, h)
    keep_x = ((xs - cx + 0.5).abs_() >= half).to(dtype)  # (b, w)
    return torch.maximum(keep_y[:, :, None], keep_x[:, None, :])


def _randint(high: int, shape: tuple, generator: torch.Generator | None, device) -> torch.Tensor:
    """`randint(0, high)` drawn on the generator's device, used on `device`."""
    t = torch.randint(0, high, shape, device=generator.device if generator is not None else device,
                      generator=generator)
    return t if t.device == device else t.to(device)


def _draw_centres(b: int, h: int, w: int, generator, device) -> tuple[torch.Tensor, torch.Tensor]:
    return _randint(h, (b, 1), generator, device), _randint(w, (b, 1), generator, device)


def cutout_(x: torch.Tensor, size: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Zero a `size` x `size` square in every image of the batch, in all channels, in place.

    As DeVries & Taylor's Cutout used by the reference (docs/method.md §6.1): the centre (cy, cx) is a uniform
    random pixel; rows `[cy - size//2, cy + size//2)` and likewise columns, clipped at the borders,
    are set to 0 (after normalization). For odd `size` the hole is `size - 1` wide, as there.
    The hole is applied as a multiplication by a 0/1 mask (finite data, as every Split holds), as the
    reference's `img * mask`.
    """
    b, _, h, w = x.shape
    cy, cx = _draw_centres(b, h, w, generator, x.device)
    return x.mul_(_keep_masks(cy, cx, size, h, w, x.dtype)[:, None])


def cutout(x: torch.Tensor, size: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """`cutout_` on a copy of `x`."""
    return cutout_(x.clone(), size, generator)


def cutout_area(size: int, h: int, w: int) -> float:
    """The expected number of pixels `cutout` zeroes in an h x w image: E[len_y] * E[len_x].

    The clipped lengths in the two axes are independent, so the mean area is the product of the mean
    lengths, each an average over the h (or w) possible centres.
    """
    half = size // 2

    def mean_len(n: int) -> float:
        return sum(min(c + half, n) - max(c - half, 0) for c in range(n)) / n

    return mean_len(h) * mean_len(w)


class _Cutout:
    """`cutout_` for one image shape, with every centre's mask made once and looked up per batch.

    The masks are uint8 0/1: a float times a uint8 0 or 1 is the same float product as with a float
    mask, and the lookup moves 4x fewer bytes.
    """

    def __init__(self, size: int, h: int, w: int, device):
        self.size, self.h, self.w = size, h, w
        self.table = self.masks = None
        if (h * w) ** 2 <= HOLE_TABLE_MAX:  # the same function as cutout_, so the same masks bit for bit
            cy, cx = torch.arange(h, device=device), torch.arange(w, device=device)
            self.table = _keep_masks(cy.repeat_interleave(w)[:, None], cx.repeat(h)[:, None], size, h, w,
                                     torch.uint8)

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        if self.table is None:
            return cutout_(x, self.size, generator)
        cy, cx = _draw_centres(len(x), self.h, self.w, generator, x.device)
        if self.masks is None or len(self.masks) < len(x):
            self.masks = self.table.new_empty((len(x), self.h, self.w))  # ours alone: written every batch
        masks = torch.index_select(self.table, 0, (cy * self.w + cx).view(-1), out=self.masks[:len(x)])
        return x.mul_(masks[:, None])


_STORAGE_USE_COUNT = getattr(torch._C, "_storage_Use_Count", None)  # private: without it, no memory is reused


def _use_count(t: torch.Tensor) -> int | None:
    """How many tensors (views, autograd's saved copies, numpy arrays' bases...) share `t`'s memory."""
    if _STORAGE_USE_COUNT is None:
        return None
    return _STORAGE_USE_COUNT(t.untyped_storage()._cdata) - 1  # minus the storage object made here


class _Batches:
    """Output tensors whose memory is written again once nothing outside holds it any more.

    On CPU a fresh batch each step is a fresh mapping from the OS, faulted in page by page (a large share
    of the data path's time, docs/performance.md); a batch is written again only when no tensor but
    ours uses its memory, so a batch a consumer keeps is never overwritten. CUDA's caching allocator
    already reuses memory, so there every batch is new.
    """

    def __init__(self, keep: int = 4):
        self.keep, self.pool = keep, []

    def get(self, b: int, shape: tuple, dtype, device: torch.device) -> torch.Tensor:
        """`b` images of a free (or new) tensor of `shape` (a full batch)."""
        if device.type == "cpu":
            for t in self.pool:
                if t.shape == shape and t.dtype == dtype and _use_count(t) == 1:
                    return t[:b]
        t = torch.empty(shape, dtype=dtype, device=device)
        if device.type == "cpu" and self.keep and _use_count(t) is not None:
            # the newest: a batch a consumer keeps for good (fit's first batch) leaves the pool in time
            self.pool = (self.pool + [t])[-self.keep:]
        return t[:b]  # a view: the consumer's tensor is never the pool's own, so it is counted


class Loader:
    """Batches `(x, y)` of a `Split`, on `device`, augmented in batch.

    Args:
        split: the data; it is moved to `device` once, here (its uint8 `raw` images instead of `x`
            when it has them and crop or flip is on: see the module docstring).
        batch_size: images per batch.
        shuffle: a new permutation from `generator` each epoch; else the split's order.
        crop: random crop with this much padding (the reference's 4 for CIFAR), 0 for none.
        flip: random horizontal flip with p = 0.5.
        cutout: side of the Cutout hole (the reference's 16), 0 for none.
        generator: the source of all randomness; None draws a seed from torch's global RNG.
        drop_last: drop the last, smaller batch.

    Each batch is a new tensor: a consumer may keep it. Torch ops run with the caller's thread count.

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
        self.batch_size, self.shuffle, self.drop_last = int(batch_size), shuffle, drop_last
        self.crop, self.flip, self.cutout = int(crop), bool(flip), int(cutout)
        # uint8 only pays where there is a crop or flip to move bytes through; a plain gather of floats
        # costs the same as a gather of bytes plus the normalization (docs/performance.md).
        raw = getattr(split, "raw", None)
        self.raw_norm = None
        if raw is not None and split.raw_norm is not None and (self.crop or self.flip):
            self.x = raw.to(self.device)
            scale, mean, std = split.raw_norm
            # device tensors, not Python scalars: CUDA divides by a CPU scalar as a multiply by its
            # reciprocal, which is not the CPU's correctly rounded division that made split.x
            self.raw_norm = tuple(torch.as_tensor(v, dtype=torch.float32).to(self.device).view(1, -1, 1, 1)
                                  for v in (scale, mean, std))
            self.pad_value = None  # raw padding is 0, a black pixel: normalized, exactly split.pad_value
        else:
            self.x = split.x.to(self.device)
            pad = getattr(split, "pad_value", None)
            self.pad_value = pad.to(self.device) if pad is not None else None
        self.y = split.y.to(self.device)
        if generator is None:  # deterministic under torch.manual_seed, like the reference's set_seed
            seed = int(torch.randint(0, 2**62, (1,)).item())
            generator = torch.Generator(self.device).manual_seed(seed)
        self.generator = generator
        self._crop_flip = self._cutout = self._raw_batch = None  # made on the first batch: buffers, tables
        self._out = _Batches()

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
            x = self._batch(idx, g)
            if self.cutout:
                if self._cutout is None:
                    self._cutout = _Cutout(self.cutout, *x.shape[2:], x.device)
                x = self._cutout(x, g)
            yield x, self.y.index_select(0, idx)

    def _batch(self, idx: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """The batch `idx`, cropped and flipped as drawn from `g`, normalized, in memory of its own."""
        b, shape = len(idx), (self.batch_size,) + tuple(self.x.shape[1:])
        if not (self.crop or self.flip):
            # on CPU index_select is several times faster than self.x[idx]
            return torch.index_select(self.x, 0, idx, out=self._out.get(b, shape, self.x.dtype, self.device))
        if self._crop_flip is None:
            self._crop_flip = _CropFlip(self.x, self.batch_size, self.crop, self.flip, self.pad_value)
        if self.raw_norm is None:
            return self._crop_flip(idx, g, self._out.get(b, shape, self.x.dtype, self.device))
        if self._raw_batch is None:  # ours alone: normalized into a new batch right away
            self._raw_batch = self.x.new_empty(shape)
        raw = self._crop_flip(idx, g, self._raw_batch[:b])
        return normalize_raw(raw, *self.raw_norm, out=self._out.get(b, shape, torch.float32, self.device))
