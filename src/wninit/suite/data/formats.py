"""Readers of the paper's dataset files (docs/method.md §6.1): MNIST idx (gzipped or not) and the CIFAR python
tarballs, each checked (published MD5 where a download is involved, then the format) before any array is
returned, and read without unpickling anything but arrays.
"""
from __future__ import annotations

import gzip
import io
import math
import pickle
import struct
import tarfile
import zlib
from pathlib import Path

import numpy as np

from wninit.errors import UserError
from wninit.suite.data import checksums

__all__ = ["mnist_arrays", "cifar_arrays"]

# ---- MNIST idx files -----------------------------------------------------------------------------

_MNIST_NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                "t10k-labels-idx1-ubyte")


def mnist_arrays(root: Path, part: str, download: bool) -> tuple[np.ndarray, np.ndarray]:
    path = _mnist_file(root, f"{part}-images-idx3-ubyte", download)
    images = _read_idx(path, 3)
    labels = _read_idx(_mnist_file(root, f"{part}-labels-idx1-ubyte", download), 1)
    if images.shape[1:] != (28, 28) or len(images) != len(labels) or (len(labels) and labels.max() > 9):
        raise UserError(f"{path} and its labels file are not MNIST (need N 28x28 images and N labels 0..9, "
                        f"got images {images.shape} and {labels.shape} labels); replace both with the "
                        "official files")
    return images, labels.astype(np.int64)


def _mnist_file(root: Path, base: str, download: bool) -> Path:
    # Our folder, then torchvision's layout root/MNIST/raw; the .gz first since it has a published MD5.
    for folder in (root, root / "MNIST" / "raw"):
        for name in (base + ".gz", base):
            if (folder / name).is_file():
                return folder / name
    hint = (f"place {', '.join(n + '.gz' for n in _MNIST_NAMES)} (or the same files unzipped) in {root} "
            "or its MNIST/raw/, or pass download=True (--download)")
    if not download:
        raise UserError(f"MNIST file {base}[.gz] not found; {hint}")
    return checksums.download("mnist", base + ".gz", root / "MNIST" / "raw", hint)


def _read_idx(path: Path, ndim: int) -> np.ndarray:
    fix = "delete it and place a fresh copy of the official file, or pass download=True"
    data = path.read_bytes()
    checksums.check_md5(path.name, data, path, fix)
    if path.suffix == ".gz":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise UserError(f"{path} is not a valid gzip file ({exc}); {fix}") from None
    # idx format: 0x00 0x00, type 0x08 (uint8), ndim, then ndim big-endian uint32 sizes, then the bytes.
    if len(data) < 4 + 4 * ndim or data[:4] != bytes((0, 0, 8, ndim)):
        raise UserError(f"{path} is not an idx file of {ndim}-d uint8 data (magic number "
                        f"{data[:4].hex() or 'missing'}, expected {bytes((0, 0, 8, ndim)).hex()}); {fix}")
    dims = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    expected = 4 + 4 * ndim + math.prod(dims)
    if len(data) != expected:
        raise UserError(f"{path} holds {len(data)} bytes but its header announces {expected} "
                        f"(shape {dims}): the file is truncated or corrupt; {fix}")
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims).copy()  # writable, for torch


# ---- CIFAR python pickles ------------------------------------------------------------------------

_CIFAR = {  # folder, archive, train files, test files, label key, classes
    "cifar10": ("cifar-10-batches-py", "cifar-10-python.tar.gz", [f"data_batch_{i}" for i in range(1, 6)],
                ["test_batch"], "labels", 10),
    "cifar100": ("cifar-100-python", "cifar-100-python.tar.gz", ["train"], ["test"], "fine_labels", 100),
}


def cifar_arrays(name: str, root: Path, download: bool):
    folder, archive, train, test, label_key, classes = _CIFAR[name]
    fix = "delete it and place a fresh copy of the official file, or pass download=True"
    members = [f"{folder}/{f}" for f in train + test]
    if all((root / m).is_file() for m in members):  # extracted (also torchvision's layout)
        blobs = {m: ((root / m).read_bytes(), root / m) for m in members}
    elif (root / archive).is_file() or download:
        path = root / archive
        if not path.is_file():
            path = checksums.download(name, archive, root, _cifar_hint(name, root))
        blobs = _tar_members(path, members, fix)
    else:
        raise UserError(f"{name} files not found; {_cifar_hint(name, root)}")
    parts = []
    for files in (train, test):
        arrays = []
        for f in files:
            data, path = blobs[f"{folder}/{f}"]
            checksums.check_md5(f"{folder}/{f}", data, path, fix)
            arrays.append(_read_cifar_batch(data, path, label_key, classes, fix))
        parts += [np.concatenate([a[0] for a in arrays]), np.concatenate([a[1] for a in arrays])]
    return (*parts, classes)


def _cifar_hint(name: str, root: Path) -> str:
    folder, archive, train, test, _, _ = _CIFAR[name]
    return (f"place {archive}, or its extracted folder {folder}/ with {', '.join(train + test)}, in {root}, "
            "or pass download=True (--download)")


def _tar_members(path: Path, members: list[str], fix: str) -> dict[str, tuple[bytes, str]]:
    data = path.read_bytes()
    checksums.check_md5(path.name, data, path, fix)
    found = {}
    try:  # one pass: seeking back in a .tar.gz would decompress it again
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            for info in tar:
                if info.name in members and info.isfile():
                    found[info.name] = (tar.extractfile(info).read(), f"{path}:{info.name}")
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise UserError(f"{path} is not a readable .tar.gz archive ({exc}); {fix}") from None
    missing = [m for m in members if m not in found]
    if missing:
        raise UserError(f"{path} lacks {', '.join(missing)}: it is not the official archive; {fix}")
    return found


class _ArraysOnly(pickle.Unpickler):
    # Unpickling runs code named by the file; a CIFAR batch needs only numpy's array reconstruction.
    _ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.numeric", "_frombuffer"),
                ("numpy._core.numeric", "_frombuffer"), ("_codecs", "encode")}

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _read_cifar_batch(data: bytes, path, label_key: str, classes: int, fix: str):
    try:
        batch = _ArraysOnly(io.BytesIO(data), encoding="latin1").load()
    except Exception as exc:  # any failure to unpickle means the same thing: not a CIFAR batch
        raise UserError(f"{path} is not a CIFAR python pickle ({type(exc).__name__}: {exc}); {fix}") from None
    if not isinstance(batch, dict):
        raise UserError(f"{path} holds a {type(batch).__name__}, not a CIFAR batch dict; {fix}")
    batch = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in batch.items()}
    x, y = batch.get("data"), batch.get(label_key)
    if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3072 or y is None:
        raise UserError(f"{path} lacks the CIFAR keys 'data' (N x 3072 uint8) and {label_key!r}; {fix}")
    y = np.asarray(y, dtype=np.int64)
    if y.shape != (len(x),) or (len(y) and (y.min() < 0 or y.max() >= classes)):
        raise UserError(f"{path} has {y.size} labels for {len(x)} images or labels outside 0..{classes - 1}; "
                        f"{fix}")
    return x.reshape(-1, 3, 32, 32), y  # rows are 1024 R, 1024 G, 1024 B values, each row-major
