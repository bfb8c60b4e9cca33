"""The standard files of MNIST and CIFAR-10/100: their MD5s and URLs (one table), and a verified download.

The MD5s are the ones torchvision publishes for the very same files, so a folder torchvision filled is
checked with them too. Tests may replace entries of `MD5` and `MIRRORS` (e.g. with
`monkeypatch.setitem`) to serve tiny files of their own; nothing else reads module state.
"""
from __future__ import annotations

import hashlib
import urllib.error
import urllib.request
from pathlib import Path

from wninit.suite._files import atomic_path
from wninit.errors import UserError

__all__ = ["MD5", "MIRRORS", "md5_of", "check_md5", "download"]

# Keyed by the file's path inside its dataset folder (the archive members by "<folder>/<member>").
# The uncompressed MNIST idx files have no published MD5: they get the format checks only.
MD5: dict[str, str] = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    "cifar-10-python.tar.gz": "c58f30108f718f92721af3b95e74349a",
    "cifar-10-batches-py/data_batch_1": "c99cafc152244af753f735de768cd75f",
    "cifar-10-batches-py/data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "cifar-10-batches-py/data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "cifar-10-batches-py/data_batch_4": "634d18415352ddfa80567beed471001a",
    "cifar-10-batches-py/data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "cifar-10-batches-py/test_batch": "40351d587109b95175f43aff81a1287e",
    "cifar-100-python.tar.gz": "eb9058c3a382ffc7106e4002c42a8d85",
    "cifar-100-python/train": "16019d7e3df5f24257cddd939b257f8d",
    "cifar-100-python/test": "f0ef6b0ae62326f3e7ffdfab6717acfc",
}

# Base URLs tried in order; a file's URL is base + its name. yann.lecun.com often refuses downloads,
# so PyTorch's S3 mirror comes first (as torchvision does).
MIRRORS: dict[str, tuple[str, ...]] = {
    "mnist": ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
    "cifar10": ("https://www.cs.toronto.edu/~kriz/",),
    "cifar100": ("https://www.cs.toronto.edu/~kriz/",),
}

_CHUNK = 1 << 20


def md5_of(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def check_md5(key: str, data: bytes, path: Path | str, fix: str) -> None:
    """Raise a UserError naming `path` if `data` does not have the published MD5 of `key`.

    Files without a published MD5 pass; their readers check the format instead.
    """
    want = MD5.get(key)
    if want is not None and md5_of(data) != want:
        raise UserError(f"{path} is corrupt or not the official file (its MD5 is {md5_of(data)}, expected "
                        f"{want}); {fix}")


class _Mismatch(Exception):
    """A mirror served a file whose MD5 is not the published one: the next mirror is tried."""


def _fetch(url: str, path: Path) -> str:
    """Stream `url` into `path`; return the MD5 hex digest of the bytes."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
        while chunk := response.read(_CHUNK):
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()


def download(dataset: str, name: str, folder: Path, hint: str) -> Path:
    """Fetch `name` from the dataset's mirrors into `folder`, verified, and return its path.

    The bytes go to a temporary file beside the target (`wninit.suite._files.atomic_path`), moved into
    place only once the MD5 matches, so an interrupted or corrupt download never leaves a file that a later
    load would read. `hint` is the sentence telling the user which files to place by hand.
    """
    folder.mkdir(parents=True, exist_ok=True)
    target, problems = folder / name, []
    for base in MIRRORS[dataset]:
        url = base + name
        try:
            with atomic_path(target, suffix=".part") as tmp:
                digest = _fetch(url, tmp)
                want = MD5.get(name)
                if want is not None and digest != want:
                    raise _Mismatch(f"{url} gave MD5 {digest}, expected {want}")
            return target
        except _Mismatch as exc:
            problems.append(str(exc))
        except (urllib.error.URLError, OSError, ValueError) as exc:
            problems.append(f"{url}: {getattr(exc, 'reason', exc)}")
    raise UserError(f"could not download {name} ({'; '.join(problems)}); {hint}")
