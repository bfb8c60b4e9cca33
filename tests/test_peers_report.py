"""The peers table and figure (wninit.suite.report.peers): per (arch, method, depth) the best-by-validation learning
rate's test accuracy as mean ± std over seeds (diverged = 0), the % of runs that train, and the methods that
train / fail at each architecture's deepest depth, recomputed here by hand from a small set of runs."""
import statistics
from types import SimpleNamespace

from wninit.suite.report.peers import TRAINS_ACC, deepest_verdicts, method_label, peer_cells, peers_markdown, plot_peers
from wninit.suite.train import RunConfig


def _run(status, test, val, **fields):
    cfg = RunConfig(dataset="digits", arch="wrn", k=1, epochs=1, batch_size=64, **fields)
    metrics = {} if status != "completed" else {"test_acc": test, "best_val_acc": val}
    return SimpleNamespace(id=cfg.run_id, config=cfg, status=status, metrics=metrics, error=None)


PLAIN = dict(norm="none", scheme="he")
RUNS = [
    # fixup at depth 10: lr 0.01 is best on validation (0.9 vs 0.5), its seeds 0.92 and 0.88
    _run("completed", 0.92, 0.90, depth=10, lr=0.01, seed=1, peer="fixup", **PLAIN),
    _run("completed", 0.88, 0.90, depth=10, lr=0.01, seed=2, peer="fixup", **PLAIN),
    _run("completed", 0.40, 0.50, depth=10, lr=0.1, seed=1, peer="fixup", **PLAIN),
    _run("completed", 0.45, 0.50, depth=10, lr=0.1, seed=2, peer="fixup", **PLAIN),
    # fixup at depth 40 trains, nf there diverges once and stays below the threshold once: fails
    _run("completed", 0.80, 0.80, depth=40, lr=0.01, seed=1, peer="fixup", **PLAIN),
    _run("completed", 0.70, 0.75, depth=40, lr=0.01, seed=2, peer="fixup", **PLAIN),
    _run("diverged", None, None, depth=40, lr=0.01, seed=1, peer="nf", **PLAIN),
    _run("completed", 0.30, 0.30, depth=40, lr=0.01, seed=2, peer="nf", **PLAIN),
    _run("completed", 0.95, 0.95, depth=40, lr=0.01, seed=1, norm="bn", scheme="he"),
    _run("completed", 0.60, 0.60, depth=40, lr=0.01, seed=1, norm="wn", scheme="proposed"),
]


def test_method_labels_name_the_init_and_the_normalization():
    labels = [method_label(r.config.to_dict()) for r in RUNS]
    assert set(labels) == {"fixup", "nf", "he + BN", "proposed (WN)"}


def test_cells_hold_the_best_lr_by_validation_mean_and_std_over_seeds_and_the_share_that_trains():
    cells = peer_cells(RUNS)
    c = cells[("wrn", "fixup", 10)]
    assert c.chosen == {"lr": 0.01}
    assert c.test.mean == statistics.mean([0.92, 0.88]) and c.test.std == statistics.stdev([0.92, 0.88])
    assert (c.trained, c.finished) == (2, 4) and c.trains_pct == 50.0  # the lr 0.1 runs stay below 0.5
    nf = cells[("wrn", "nf", 40)]
    assert nf.test.values == [0.0, 0.30] and nf.trained == 0 and nf.grid["diverged"] == 1
    assert TRAINS_ACC == 0.5


def test_the_deepest_depth_verdict_and_the_markdown_table(tmp_path):
    cells = peer_cells(RUNS)
    depth, ok, bad = deepest_verdicts(cells)["wrn"]
    assert depth == 40 and set(ok) == {"fixup", "he + BN", "proposed (WN)"} and bad == ["nf"]
    text = peers_markdown(cells)
    assert "| wrn | fixup | 10 | 0.900 ± 0.028 (n=2) | 0.01 | 50% (2/4) |" in text
    assert "WRN at depth 40: trains: fixup, he + BN, proposed (WN); fails: nf." in text
    png = plot_peers(cells, tmp_path / "peers.png", title="peers", scale="test")
    assert png.stat().st_size > 10_000 and png.read_bytes()[:4] == b"\x89PNG"
