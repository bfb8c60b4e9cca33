import math
import threading

import pytest
import torch

import wninit
from wninit.init import gains as init


def test_proposed_gain_is_the_formula():
    for fan_in, fan_out, gamma in [(20, 60, 2.0), (784, 128, 2.0), (16, 160, 1.0), (1440, 1440, 1 / 6)]:
        assert init.proposed_gain(fan_in, fan_out, gamma) == math.sqrt(gamma * fan_in / fan_out)
    assert init.proposed_gain(20, 60) == pytest.approx(0.816496580927726)  # the reference code's own test


@pytest.mark.parametrize("shape, fans", [((60, 20), (20, 60)), ((32, 16, 3, 3), (144, 288)),
                                         ((8, 4, 5), (20, 40)), ((4, 2, 3, 3, 3), (54, 108))])
def test_fans_match_pytorch(shape, fans):
    w = torch.empty(shape)
    assert init.fan_in_and_fan_out(w) == fans == torch.nn.init._calculate_fan_in_and_fan_out(w)


def test_orthogonal_direction_has_orthonormal_rows_or_columns(gen):
    w = init.orthogonal_direction_(torch.empty(32, 16, 3, 3), gen).flatten(1)  # 32 <= 144: rows
    torch.testing.assert_close(w @ w.T, torch.eye(32), atol=1e-5, rtol=0)
    w = init.orthogonal_direction_(torch.empty(200, 50), gen)  # 200 > 50: columns
    torch.testing.assert_close(w.T @ w, torch.eye(50), atol=1e-5, rtol=0)


def test_gaussian_direction_is_he_normal(gen):
    w = init.gaussian_direction_(torch.empty(512, 256, 3, 3), gen)
    std = math.sqrt(2 / (256 * 9))
    # 1.2M samples: the sample mean's std is std/1086, the sample std's relative error ~1e-3.
    assert abs(w.mean().item()) < 5 * std / 1086
    assert w.std().item() == pytest.approx(std, rel=5e-3)
    # Kurtosis 3 distinguishes the normal from a uniform of the same variance (1.8).
    z = (w.flatten() / std)
    assert (z ** 4).mean().item() == pytest.approx(3.0, abs=0.05)


def test_generator_makes_directions_repeatable():
    a = init.direction_(torch.empty(8, 8), "he", torch.Generator().manual_seed(3))
    b = init.direction_(torch.empty(8, 8), "gaussian", torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


@pytest.mark.parametrize("bad", ["uniform", "", None])
def test_unknown_direction_names_the_choices(bad):
    with pytest.raises(ValueError, match="choose one of 'orthogonal', 'gaussian'"):
        init.check_direction(bad)


def test_bad_gain_arguments():
    with pytest.raises(ValueError):
        init.proposed_gain(0, 3)
    with pytest.raises(ValueError):
        init.proposed_gain(3, 3, gamma=0)


@pytest.mark.parametrize("shape", [(4, 8), (8, 4), (5, 5), (16, 3, 3, 3), (3, 16, 3, 3), (10, 1)])
def test_orthogonal_direction_draws_exactly_what_torch_orthogonal_draws(shape):
    # wninit's copy skips the final multiply by a gain of 1 (a 10,000-layer init's time); same draws, same bits
    ours, theirs = torch.empty(shape), torch.empty(shape)
    init.orthogonal_direction_(ours, torch.Generator().manual_seed(3))
    torch.nn.init.orthogonal_(theirs, generator=torch.Generator().manual_seed(3))
    assert torch.equal(ours, theirs)
    with pytest.raises(ValueError, match="2 or more dimensions"):
        init.orthogonal_direction_(torch.empty(4))


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_orthogonal_directions_are_the_one_by_one_draws_at_one_thread_bit_for_bit(threads):
    # the draws stay in layer order from one generator; the QRs run side by side, each on one LAPACK
    # thread, so any thread count gives the one-by-one calls' result at one thread (torch's orthogonal_
    # alone rounds differently at 1 and 2 threads: MKL threads its larger QRs)
    shapes = [(16, 3, 3, 3), (16, 16, 3, 3), (32, 16, 1, 1), (64, 32, 3, 3), (10, 64), (128, 784), (7, 5), (5, 5)]
    one_by_one, batch = [torch.empty(s) for s in shapes], [torch.empty(s) for s in shapes]
    one_by_one.insert(3, torch.empty(8, 6).t())  # a non-contiguous weight takes the one-by-one path, in its turn
    batch.insert(3, torch.empty(8, 6).t())
    gen_ref, gen_batch = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        for w in one_by_one:
            init.orthogonal_direction_(w, gen_ref)
        torch.set_num_threads(threads)
        init.orthogonal_directions_(batch, gen_batch)
        assert torch.get_num_threads() == threads  # restored
    finally:
        torch.set_num_threads(before)
    assert all(torch.equal(a, b) for a, b in zip(one_by_one, batch))
    assert torch.equal(gen_batch.get_state(), gen_ref.get_state())  # the stream is left where one-by-one leaves it
    with pytest.raises(ValueError, match="2 or more dimensions"):
        init.orthogonal_directions_([torch.empty(4, 4), torch.empty(4)])


def _new_thread_count() -> int:
    """The torch thread count a thread started now begins with (process-wide, unlike the caller's own)."""
    seen = []
    thread = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
    thread.start()
    thread.join()
    return seen[0]


def test_initialize_leaves_every_thread_count_as_it_found_it(monkeypatch):
    # A model with many layers: its QRs run on worker threads, each set to one torch thread for itself. The
    # calling thread's count stays what it was during the call, and the count new threads start with, which
    # torch.set_num_threads in a worker changes for the whole process, is back after it.
    factor_all, orthogonalize = init._factor_all, init._orthogonalize_
    during, qr_threads = [], set()

    def watched_factor_all(weights, threads):
        during.append(torch.get_num_threads())
        factor_all(weights, threads)

    def watched_orthogonalize(w):
        qr_threads.add((threading.get_ident(), torch.get_num_threads()))
        orthogonalize(w)

    monkeypatch.setattr(init, "_factor_all", watched_factor_all)
    monkeypatch.setattr(init, "_orthogonalize_", watched_orthogonalize)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(3)
        model = wninit.models.MLP(32, 16, depth=40, num_classes=10)
        records = wninit.initialize(model, "proposed", generator=torch.Generator().manual_seed(0))
        after, after_new = torch.get_num_threads(), _new_thread_count()
    finally:
        torch.set_num_threads(before)
    assert len(records) == 40 and during == [3]
    assert (after, after_new) == (3, 3)
    assert {count for _, count in qr_threads} == {1}  # each QR on one thread: the same bits at any count
    assert threading.get_ident() not in {ident for ident, _ in qr_threads}  # on the workers, not the caller
