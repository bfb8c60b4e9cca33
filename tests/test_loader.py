"""wninit.suite.data.loader: batching, determinism, and the batched augmentation measured against the
definitions of RandomCrop(padding), RandomHorizontalFlip and Cutout (docs/method.md §6.1)."""
import pytest
import torch

from wninit.suite.data import Loader, Split, cutout, cutout_area, random_crop_flip
from wninit.errors import UserError


def coordinate_images(n, c=2, h=12, w=12):
    """Images whose pixel (ch, i, j) holds 1 + ch*1000 + i*w + j: every value says where it came from."""
    grid = torch.arange(h * w, dtype=torch.float32).view(h, w) + 1
    image = torch.stack([grid + 1000 * ch for ch in range(c)])
    return image.expand(n, c, h, w).contiguous()


def infer_transform(out, crop, w):
    """Per-sample (dy, dx, flipped) of crop+flip outputs of coordinate_images, from two central pixels."""
    h = out.shape[2]
    i, j = h // 2, w // 2  # the centre always comes from the image, never from padding (crop < h/2)
    a, b = out[:, 0, i, j] - 1, out[:, 0, i, j + 1] - 1
    flipped = b < a
    src_i, src_j = torch.div(a, w, rounding_mode="floor").long(), (a % w).long()
    dy = src_i - i + crop
    dx = torch.where(flipped, src_j - (w - 1 - j) + crop, src_j - j + crop)
    return dy, dx, flipped


def chi_square_uniform(values, k):
    counts = torch.bincount(values, minlength=k).double()
    expected = len(values) / k
    return float(((counts - expected) ** 2 / expected).sum())


def test_batches_cover_the_split_once_per_epoch():
    split = Split(torch.arange(10.0).view(10, 1), torch.arange(10))
    loader = Loader(split, 4, generator=torch.Generator().manual_seed(0))
    batches = list(loader)
    assert len(loader) == 3 and [len(y) for _, y in batches] == [4, 4, 2]
    seen = torch.cat([y for _, y in batches])
    assert sorted(seen.tolist()) == list(range(10)) and seen.tolist() != list(range(10))
    assert all(torch.equal(x[:, 0].long(), y) for x, y in batches)  # x and y stay paired
    assert [len(y) for _, y in Loader(split, 4, drop_last=True)] == [4, 4]
    assert torch.cat([y for _, y in Loader(split, 3, shuffle=False)]).tolist() == list(range(10))
    assert len(Loader(Split(torch.zeros(0, 1), torch.zeros(0, dtype=torch.long)), 4)) == 0


def test_same_seed_same_batches_other_seed_other_batches():
    g = torch.Generator().manual_seed(1)
    split = Split(torch.randn(64, 3, 8, 8, generator=g), torch.randint(0, 10, (64,), generator=g))

    def run(seed):
        loader = Loader(split, 16, crop=2, flip=True, cutout=4, generator=torch.Generator().manual_seed(seed))
        return [b for _ in range(2) for b in loader]  # two epochs: each draws a new permutation

    first, again, other = run(7), run(7), run(8)
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(first, again))
    assert not torch.equal(first[0][0], other[0][0])
    assert not torch.equal(first[0][1], first[4][1])  # epoch 2 is not a replay of epoch 1
    torch.manual_seed(3)  # without a generator the loader seeds from torch's global RNG
    a = next(iter(Loader(split, 16, crop=2)))[0]
    torch.manual_seed(3)
    assert torch.equal(a, next(iter(Loader(split, 16, crop=2)))[0])


def test_crop_offsets_are_uniform_over_minus_crop_to_crop():
    crop, n = 4, 18000
    out = random_crop_flip(coordinate_images(n), crop, flip=False, generator=torch.Generator().manual_seed(0))
    dy, dx, flipped = infer_transform(out, crop, 12)
    assert not flipped.any() and dy.min() == 0 and dy.max() == 2 * crop
    # 9 equally likely offsets per axis: chi-square with 8 dof, below its 0.1% critical value 26.12
    assert chi_square_uniform(dy, 2 * crop + 1) < 26.12
    assert chi_square_uniform(dx, 2 * crop + 1) < 26.12
    assert abs(torch.corrcoef(torch.stack([dy.double(), dx.double()]))[0, 1]) < 0.03  # independent axes


def test_flip_rate_is_one_half():
    n = 20000
    x = coordinate_images(n, c=1, h=4, w=6)
    out = random_crop_flip(x, 0, flip=True, generator=torch.Generator().manual_seed(0))
    flipped = (out == x.flip(3)).flatten(1).all(1)
    assert torch.equal(flipped | (out == x).flatten(1).all(1), torch.ones(n, dtype=torch.bool))
    assert abs(flipped.float().mean().item() - 0.5) < 0.015  # sd of the rate is 0.0035: 4 sd
    # the loader's flip-only path: each image is itself or its mirror, about half of them mirrored
    loader = Loader(Split(x[:2000], torch.arange(2000)), 500, flip=True, generator=torch.Generator().manual_seed(1))
    out = torch.cat([b for b, _ in loader])
    mirrored = (out == x[:2000].flip(3)).flatten(1).all(1)
    assert torch.equal(mirrored | (out == x[:2000]).flatten(1).all(1), torch.ones(2000, dtype=torch.bool))
    assert abs(mirrored.float().mean().item() - 0.5) < 0.045  # 4 sd of a rate over 2000


@pytest.mark.parametrize("through", ["function", "loader"])
def test_crop_and_flip_move_pixels_like_pad_then_slice_then_mirror(through):
    crop, n, h, w = 3, 400, 12, 12
    fill = torch.tensor([-7.0, -9.0])
    x = coordinate_images(n, c=2, h=h, w=w)
    g = torch.Generator().manual_seed(2)
    if through == "function":
        out, which = random_crop_flip(x, crop, flip=True, generator=g, pad_value=fill), torch.zeros(n, dtype=torch.long)
    else:  # image k is shifted by 1e4 * k, so each output says which image it came from (y = k)
        x = x + 1e4 * torch.arange(n).view(n, 1, 1, 1)
        loader = Loader(Split(x, torch.arange(n), pad_value=fill), 64, crop=crop, flip=True, generator=g)
        batches = list(loader)  # 7 batches: the last, of 16, uses a prefix of the loader's buffer
        out, which = torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches])
    dy, dx, flipped = infer_transform(out - 1e4 * which.view(-1, 1, 1, 1), crop, w)
    assert 0.35 < flipped.float().mean() < 0.65
    for k in range(n):  # the definition, one image at a time
        padded = fill.view(2, 1, 1).expand(2, h + 2 * crop, w + 2 * crop).clone()
        padded[:, crop:crop + h, crop:crop + w] = x[which[k]]
        expect = padded[:, dy[k]:dy[k] + h, dx[k]:dx[k] + w]
        assert torch.equal(out[k], expect.flip(2) if flipped[k] else expect)


def test_cutout_zeroes_the_expected_clipped_area():
    n, size = 20000, 16
    x = torch.ones(n, 2, 32, 32)
    out = cutout(x, size, generator=torch.Generator().manual_seed(0))
    # exact expectation: the centre is uniform on 32 x 32, the hole spans [c-8, c+8) clipped to [0, 32)
    lengths = [min(c + size // 2, 32) - max(c - size // 2, 0) for c in range(32)]
    expected = (sum(lengths) / 32) ** 2
    assert expected == 196.0 and cutout_area(size, 32, 32) == expected
    zeroed = (out == 0)
    assert torch.equal(zeroed[:, 0], zeroed[:, 1])  # the same hole in every channel
    area = zeroed[:, 0].flatten(1).sum(1).double()
    assert abs(area.mean().item() - expected) < 2.0  # sd of the mean is about 0.4: 5 sd
    assert area.max() == size * size and area.min() == (size // 2) ** 2  # full hole, corner hole
    rows, cols = zeroed[:, 0].any(2).sum(1), zeroed[:, 0].any(1).sum(1)
    assert torch.equal(rows * cols, area.long())  # the hole is one rectangle
    assert torch.equal(torch.where(zeroed, x, out), x)  # nothing else changes


def test_loader_pads_with_the_splits_pad_value_and_cuts_out_to_zero():
    x = torch.full((256, 3, 8, 8), 5.0)
    split = Split(x, torch.zeros(256, dtype=torch.long), pad_value=torch.tensor([-1.0, -2.0, -3.0]))
    xb, _ = next(iter(Loader(split, 256, crop=2, cutout=4, generator=torch.Generator().manual_seed(0))))
    values = set(torch.unique(xb).tolist())
    assert values == {5.0, 0.0, -1.0, -2.0, -3.0}
    for c, fill in enumerate((-1.0, -2.0, -3.0)):
        assert not ((xb[:, c] != 5.0) & (xb[:, c] != 0.0) & (xb[:, c] != fill)).any()
    plain, _ = next(iter(Loader(Split(x, split.y), 256, crop=2, generator=torch.Generator().manual_seed(0))))
    assert set(torch.unique(plain).tolist()) == {0.0, 5.0}  # no pad_value: zero padding


def test_bad_loader_arguments_are_user_errors():
    flat = Split(torch.zeros(4, 10), torch.zeros(4, dtype=torch.long))
    with pytest.raises(UserError, match="need images"):
        Loader(flat, 2, crop=4)
    with pytest.raises(UserError, match="batch_size"):
        Loader(flat, 0)


# ---- the uint8 path, the Cutout table and batch memory reuse: the same batches, bit for bit --------

def bits(t):
    """The float32 bit patterns: equal bits, not just equal values (-0.0 and 0.0 differ here)."""
    return t.contiguous().view(torch.int32)


def uint8_split(n, c, h, w, seed=0):
    """Random uint8 images split as load_dataset splits real ones: raw kept beside the normalized x."""
    from wninit.suite.data.sources import CIFAR_MEAN_STD, normalize_raw
    raw = torch.randint(0, 256, (n, c, h, w), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)
    mean, std = (torch.tensor(v[:c]) for v in CIFAR_MEAN_STD)
    return Split(normalize_raw(raw, 255.0, mean, std), torch.arange(n), -mean / std, raw, (255.0, mean, std))


def epochs(split, batch, epochs=2, **kw):
    loader = Loader(split, batch, generator=torch.Generator().manual_seed(11), **kw)
    return [b for _ in range(epochs) for b in loader]


@pytest.mark.parametrize("crop,flip,cut", [(3, True, 5), (3, False, 0), (0, True, 4), (2, True, 0)])
def test_uint8_batches_are_the_float_batches_bit_for_bit(crop, flip, cut):
    split = uint8_split(150, 3, 10, 12)  # batches of 64: the last of each epoch is smaller
    as_float = Split(split.x, split.y, split.pad_value)  # no raw: crop, flip, cutout on the floats
    fast, slow = (epochs(s, 64, crop=crop, flip=flip, cutout=cut) for s in (split, as_float))
    assert len(fast) == len(slow) == 6
    for (xf, yf), (xs, ys) in zip(fast, slow):
        assert torch.equal(yf, ys) and xf.dtype == torch.float32
        assert torch.equal(bits(xf), bits(xs))


def test_a_loaded_datasets_raw_images_normalize_to_its_x_and_pad_to_its_pad_value(monkeypatch):
    import numpy as np

    from wninit.suite.data import load_dataset, sources
    from wninit.suite.data.sources import normalize_raw
    rng = np.random.default_rng(0)
    arrays = (rng.integers(0, 256, (200, 3, 10, 10), dtype=np.uint8), rng.integers(0, 10, 200),
              rng.integers(0, 256, (50, 3, 10, 10), dtype=np.uint8), rng.integers(0, 10, 50), 10)
    monkeypatch.setattr(sources, "cifar_arrays", lambda *a: arrays)  # the files' uint8 arrays, without the files
    ds = load_dataset("cifar10", val_fraction=0.1, seed=0)
    for split in (ds.train, ds.val, ds.test):
        assert split.raw.dtype == torch.uint8 and torch.equal(bits(normalize_raw(split.raw, *split.raw_norm)),
                                                             bits(split.x))
    scale, mean, std = ds.train.raw_norm
    black = normalize_raw(torch.zeros(1, 3, 1, 1, dtype=torch.uint8), scale, mean, std)
    assert torch.equal(bits(black.view(3)), bits(ds.train.pad_value))  # raw padding 0 = the pad value
    as_float = Split(ds.train.x, ds.train.y, ds.train.pad_value)
    for (xf, _), (xs, _) in zip(epochs(ds.train, 64, crop=4, flip=True, cutout=6),
                                epochs(as_float, 64, crop=4, flip=True, cutout=6)):
        assert torch.equal(bits(xf), bits(xs))


def test_uint8_crop_flip_moves_the_same_pixels_as_the_float_one():
    x = torch.randint(0, 256, (300, 3, 9, 7), generator=torch.Generator().manual_seed(4), dtype=torch.uint8)
    fill = torch.tensor([7, 8, 9], dtype=torch.uint8)
    for crop, flip in [(2, True), (0, True), (3, False)]:
        a = random_crop_flip(x, crop, flip, torch.Generator().manual_seed(0), fill)  # mirrored source
        b = random_crop_flip(x.float(), crop, flip, torch.Generator().manual_seed(0), fill.float())  # lerp
        assert a.dtype == torch.uint8 and torch.equal(a.float(), b)


@pytest.mark.parametrize("size,h,w", [(16, 32, 32), (5, 9, 13)])
def test_cutout_table_gives_the_masks_of_the_definition(size, h, w):
    from wninit.suite.data.loader import _Cutout
    x = torch.randn(500, 2, h, w, generator=torch.Generator().manual_seed(1))
    table = _Cutout(size, h, w, x.device)
    assert table.table is not None
    out = table(x.clone(), torch.Generator().manual_seed(3))
    assert torch.equal(bits(out), bits(cutout(x, size, torch.Generator().manual_seed(3))))


def test_kept_batches_are_never_overwritten_and_dropped_ones_are_reused():
    split = uint8_split(640, 3, 8, 8)
    kept, copies, views = [], [], []
    loader = Loader(split, 64, crop=2, flip=True, cutout=4, generator=torch.Generator().manual_seed(0))
    for i, (x, _) in enumerate(loader):
        copies.append(x.clone())
        if i % 2:
            kept.append(x)  # the whole batch
        else:
            views.append(x[3])  # only a view of one image: its memory is still in use
    for _ in range(2):  # more epochs: every later batch must find other memory
        for x, _ in loader:
            pass
    assert all(torch.equal(k, copies[2 * i + 1]) for i, k in enumerate(kept))
    assert all(torch.equal(v, copies[2 * i][3]) for i, v in enumerate(views))
    # a loop that drops each batch before the next-but-one: a few buffers serve the whole epoch
    pointers = {x.data_ptr() for x, _ in loader}
    assert len(loader) == 10 and len(pointers) <= 3
