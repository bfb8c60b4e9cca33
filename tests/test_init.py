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
    shapes += [(16, 16, 3, 3), (7, 5), (5, 5), (64, 32, 3, 3), (16, 16, 3, 3)] * 3  # same shapes: QR'd as one batch
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


def _householder(draw):
    """The one-thread path's Q of a 2-d draw: the sign-corrected Householder QR (init._orthogonalize_)."""
    q = draw.clone()
    init._orthogonalize_(q)
    return q


@pytest.fixture
def small_large(monkeypatch):
    """A lower bar for "large" and small tiles: the large paths, several tiles of them, on test-sized matrices."""
    from wninit.init import orthogonal_blocks

    monkeypatch.setattr(orthogonal_blocks, "LARGE_FLOPS", 40 * 40 * 300)
    monkeypatch.setattr(orthogonal_blocks, "_TILE", 16)


@pytest.mark.parametrize("shape", [(40, 300), (300, 40), (40, 30, 5, 2)], ids=["wide", "tall", "conv"])
def test_a_large_draw_is_the_same_q_by_blocks_orthonormal_and_the_same_at_any_thread_count(small_large, shape):
    draw = torch.empty(shape).normal_(generator=torch.Generator().manual_seed(0))
    flat = draw.view(shape[0], -1)
    results = []
    before = torch.get_num_threads()
    try:
        for threads in (1, 2, 3):
            torch.set_num_threads(threads)
            w, gen = torch.empty(shape), torch.Generator().manual_seed(0)
            init.orthogonal_directions_([w], gen)
            assert torch.get_num_threads() == threads
            results.append(w)
            one = torch.empty(shape)
            init.orthogonal_direction_(one, torch.Generator().manual_seed(0))  # the one-layer call: the same
            assert torch.equal(one, w)
    finally:
        torch.set_num_threads(before)
    assert all(torch.equal(results[0], r) for r in results)  # fixed tiles: the bits do not depend on the threads
    q = results[0].view(shape[0], -1)
    small = min(q.shape)
    gram = q @ q.T if q.size(0) == small else q.T @ q
    assert (gram - torch.eye(small)).abs().max() <= 2e-6  # orthonormal rows (wide) or columns (tall)
    # the sign-corrected QR of the same draw, only rounded otherwise: Cholesky QR's R is Householder's
    assert (q - _householder(flat)).abs().max() <= 2e-6 and not torch.equal(q, _householder(flat))


def test_a_large_square_draw_is_householder_and_an_ill_conditioned_one_falls_back_to_it(small_large):
    from wninit.init import orthogonal_blocks

    square = torch.empty(120, 120).normal_(generator=torch.Generator().manual_seed(0))  # n k^2 over the bar
    w = torch.empty(120, 120)
    init.orthogonal_directions_([w], torch.Generator().manual_seed(0))
    assert torch.equal(w, _householder(square))  # at the test's thread count
    rank_one = torch.ones(40, 300)  # A A^T singular: Cholesky QR refuses and leaves the draw untouched
    assert not orthogonal_blocks.cholesky_qr_(rank_one, 2) and torch.equal(rank_one, torch.ones(40, 300))


def test_the_real_bar_is_met_by_a_vgg_classifier_and_by_no_layer_of_the_papers_models():
    from wninit.init.orthogonal_blocks import is_large
    from wninit.models import CNN, MLP, ResNet, WideResNet
    from wninit.weightnorm.access import weight_normed_layers, wn_v

    assert is_large(4096, 25088) and is_large(4096, 4096) and not is_large(640, 640 * 9)
    with torch.device("meta"):  # shapes only: WRN-40-10 without its 56M parameters
        models = [WideResNet(40, 10, 10), WideResNet(16, 2, 10), ResNet(44, 10, width=16), MLP(784, 128, 50, 10),
                  CNN(3, 128, 25, 10)]
    for model in models:
        shapes = [wn_v(m).shape for _, m in weight_normed_layers(model)]
        assert shapes and not any(is_large(s[0], math.prod(s[1:])) for s in shapes), type(model).__name__
