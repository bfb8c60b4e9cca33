"""The data of a stacked group: one copy of the data on the device, each member's split, order and
augmentation as its standalone run's (docs/method.md §6.1 "Data" and "Validation")."""
from __future__ import annotations

import torch

from wninit.suite.train.config import RunConfig
from wninit.suite.train.protocol import load_data
from wninit.suite.train.runtime import derived_seed

__all__ = ["MemberData"]


class MemberData:
    """The training pool once on the device, each member's train/val split as indices into it.

    `load_dataset` splits the training set by `val_split_indices(n, val_fraction, seed)`; rebuilding
    the unsplit pool from one load and indexing it with each member's split gives every member the very
    tensors its own load would, without M copies of the data. The members share the test split.
    """

    def __init__(self, cfgs: list[RunConfig], device: torch.device):
        from wninit.suite.data import Loader, Split, val_split_indices

        c0 = cfgs[0]
        data = load_data(c0)
        n = len(data.train) + len(data.val)
        tr0, va0 = val_split_indices(n, c0.val_fraction, c0.seed)
        x = torch.empty((n,) + tuple(data.train.x.shape[1:]), dtype=data.train.x.dtype)
        y = torch.empty(n, dtype=data.train.y.dtype)
        x[tr0], y[tr0] = data.train.x, data.train.y
        x[va0], y[va0] = data.val.x, data.val.y
        self.x, self.y = x.to(device), y.to(device)
        self.test_x, self.test_y = data.test.x.to(device), data.test.y.to(device)
        self.pad_value = data.train.pad_value.to(device) if data.train.pad_value is not None else None
        self.in_shape, self.num_classes = data.in_shape, data.num_classes
        self.crop, self.flip, self.cutout = 4 if c0.crop else 0, bool(c0.flip), c0.cutout
        splits = [val_split_indices(n, c.val_fraction, c.seed) for c in cfgs]
        self.val_idx = torch.stack([va for _, va in splits]).to(device)  # (M, n_val)
        # A Loader over each member's train *indices*: the same permutation from the same generator as
        # its standalone Loader over the images; the augmentation is drawn right after, as there.
        self.generators = [torch.Generator(device).manual_seed(derived_seed(c.seed, "data")) for c in cfgs]
        self.loaders = [Loader(Split(tr, y[tr]), c0.loader_batch_size, shuffle=True, generator=g, device=device)
                        for (tr, _), g in zip(splits, self.generators)]

    def __len__(self) -> int:
        """Batches per epoch (the same for every member)."""
        return len(self.loaders[0])

    def _augment(self, x: torch.Tensor, m: int) -> torch.Tensor:
        from wninit.suite.data import cutout, random_crop_flip

        g = self.generators[m]
        if self.crop or self.flip:
            x = random_crop_flip(x, self.crop, self.flip, g, self.pad_value)
        if self.cutout:
            x = cutout(x, self.cutout, g)
        return x

    def batches(self):
        """One epoch of (x (M, B, features), y (M, B)): member m's batch i is its standalone run's batch i."""
        augment = self.crop or self.flip or self.cutout
        for parts in zip(*self.loaders):
            idx = torch.stack([i for i, _ in parts])
            y = torch.stack([t for _, t in parts])
            x = self.x[idx]  # one gather for all members
            if augment:
                x = torch.stack([self._augment(x[m], m) for m in range(len(parts))])
            yield x.flatten(2), y

    def first_batch(self, m: int) -> torch.Tensor:
        """Member m's first shuffled, augmented batch: what fit draws before the init (docs/method.md §4)."""
        idx, _ = next(iter(self.loaders[m]))
        return self._augment(self.x[idx], m)

    def val(self, m: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Member m's own validation split, as its standalone run holds it."""
        idx = self.val_idx[m]
        return self.x[idx], self.y[idx]
