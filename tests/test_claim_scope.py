"""A verdict only where the protocol can give one (report/scope.py, docs/claims.md): a best configuration on its
grid's edge is flagged and cannot make a claim "not hold"; a comparison where every run of an init stayed on its
initial plateau is "not trained at this scale"; and a contradiction under a bracketing grid, by trained runs, still
"does not hold" (the verdict logic fails in both directions).

The stores here are real SQLite stores whose results are written through the sweep's own ``leases.finish``, with
made-up accuracies and losses: what is tested is the judging, not the training.
"""
import math

import pytest

from wninit.suite.report import claim_book, tables
from wninit.suite.report.verdicts import EDGE, FAILS, HOLDS, INCONCLUSIVE, NOT_RUN, NOT_TRAINED, PLATEAU
from wninit.suite.sweep import leases
from wninit.suite.sweep.store import Store
from wninit.suite.train.config import RunConfig

BASE = RunConfig(dataset="mnist5k", arch="cnn", width=16, epochs=20, momentum=0.9, batch_size=64, schedule=0)
LRS = (0.001, 0.003, 0.01)
SEEDS = (1, 2, 3)
LN10 = math.log(10)


def _outcome(cfg, acc, loss, status="completed"):
    metrics = {"test_acc": acc, "best_val_acc": acc, "train_acc": acc, "epochs_done": cfg.epochs}
    return {"run_id": cfg.run_id, "status": status, "metrics": metrics, "wall_s": 1.0,
            "epochs": [{"epoch": e, "train_loss": loss, "val_loss": loss, "train_acc": acc, "val_acc": acc, "lr": cfg.lr}
                       for e in range(cfg.epochs)]}


def _store(path, deep_proposed, best_lr=0.003):
    """fig2_cnn_depth at depths 5 and 20: every init trains at depth 5 (0.95 at ``best_lr``, less elsewhere);
    datadep diverges at depth 20; Proposed (orthogonal) at depth 20 gets ``deep_proposed(lr, seed)`` =
    (accuracy, final loss), its best at ``best_lr``."""
    cfgs, outcomes = [], []
    for scheme in ("proposed", "datadep"):
        for depth in (5, 20):
            for lr in LRS:
                for seed in SEEDS:
                    cfg = BASE.replace(scheme=scheme, direction="orthogonal", depth=depth, lr=lr, seed=seed)
                    cfgs.append(cfg)
                    if depth == 5:
                        outcomes.append(_outcome(cfg, (0.95 if lr == best_lr else 0.9) + 0.002 * seed, 0.2))
                    elif scheme == "datadep":
                        outcomes.append(_outcome(cfg, None, float("nan"), "diverged"))
                    else:
                        outcomes.append(_outcome(cfg, *deep_proposed(lr, seed)))
    with Store(path) as store:
        store.add("fig2_cnn_depth", "quick", cfgs)
        for out in outcomes:
            assert leases.finish(store, out)
    return path


def _claim6(path):
    with Store(path, create=False) as store:
        return next(c for c in claim_book.judge_all(store) if c.number == 6)


def _fails_at(best_lr):
    # trained (loss 0.9, well below ln 10) but at 0.3-0.4: under 0.8 x its 0.95 at depth 5 on every seed
    return lambda lr, seed: ((0.40 if lr == best_lr else 0.30) + 0.005 * seed, 0.9)


def test_a_contradiction_under_a_bracketing_grid_still_does_not_hold(tmp_path):
    claim = _claim6(_store(tmp_path / "s.db", _fails_at(0.003)))
    assert claim.verdict == FAILS, claim.detail
    assert "Proposed (orthogonal) 0.410 at depth 20" in claim.detail and "[fails]" in claim.detail
    assert "Proposed (orthogonal) depth 20" not in claim.detail.split("grid edge")[-1]


def test_a_best_configuration_on_the_grid_edge_is_flagged_and_cannot_contradict(tmp_path):
    path = _store(tmp_path / "s.db", _fails_at(0.001))
    with Store(path, create=False) as store:
        cells = tables.depth_sweep(store.runs("fig2_cnn_depth", "quick"))
    assert cells[(("proposed", "orthogonal"), 20)].edges == {"lr": 0.001}
    assert cells[(("proposed", "orthogonal"), 5)].edges == {}  # its best, 0.003, is inside the grid
    claim = _claim6(path)
    assert claim.verdict == INCONCLUSIVE, claim.detail
    assert "best on a grid edge" in claim.detail and "Proposed (orthogonal) depth 20 lr=0.001" in claim.detail
    assert "best configuration is on its grid's edge" in claim.detail


def test_a_comparison_of_plateaued_runs_is_not_trained_at_this_scale(tmp_path):
    # every depth-20 proposed run ends within 0.05 of ln 10, at chance accuracy: it never left its plateau
    claim = _claim6(_store(tmp_path / "s.db", lambda lr, seed: (0.1, LN10 + 0.01 * (seed - 2))))
    assert claim.verdict == NOT_TRAINED, claim.detail
    assert "initial plateau" in claim.detail
    # proposed at chance beats a datadep that diverged on every run, but the win is by an init never trained
    versus = next(p for p in claim.detail.split("; ") if p.startswith("Proposed (orthogonal) > Data-dependent"))
    assert versus.endswith("[not trained: every run of an init on its initial plateau]"), versus
    # one run off the plateau (loss 2.0) is enough: the init was trained and the same accuracies do not hold
    one_left = lambda lr, seed: (0.12 if lr == 0.003 else 0.1, 2.0 if (lr, seed) == (0.01, 3) else LN10)  # noqa: E731
    assert _claim6(_store(tmp_path / "t.db", one_left)).verdict == FAILS


def test_a_datadep_that_trains_shallower_than_the_papers_failure_does_not_contradict(tmp_path):
    """The paper's data-dependent CNN trains at depth 25 and fails at 100: at depth 20 its training is what the
    paper shows, so the claim is undecided there, not contradicted; its failing there still counts."""
    trains = lambda lr, seed: ((0.9 if lr == 0.003 else 0.85) + 0.003 * seed, 0.3)  # noqa: E731
    path = _store(tmp_path / "s.db", trains)
    with Store(path) as store:  # datadep at depth 20 now trains as well as proposed
        for run in store.runs("fig2_cnn_depth", "quick"):
            if run.config.scheme == "datadep" and run.config.depth == 20:
                cfg = run.config
                store.conn.execute("UPDATE runs SET status='pending', metrics=NULL WHERE id=?", (run.id,))
                store.conn.execute("DELETE FROM epochs WHERE run_id=?", (run.id,))
                store.conn.commit()
                assert leases.finish(store, _outcome(cfg, *trains(cfg.lr, cfg.seed)))
    claim = _claim6(path)
    assert claim.verdict == INCONCLUSIVE, claim.detail
    assert "failing from depth 100 only" in claim.detail


def test_the_claim_holds_when_proposed_trains_deep(tmp_path):
    claim = _claim6(_store(tmp_path / "s.db", lambda lr, seed: ((0.9 if lr == 0.003 else 0.85) + 0.003 * seed, 0.3)))
    assert claim.verdict == HOLDS, claim.detail


T1 = RunConfig(dataset="digits", arch="resnet", depth=20, width=16, epochs=20, momentum=0.9, batch_size=64, schedule=1)


def _table1_claim(path, proposed_acc, lrs=LRS):
    """table1_wn_vs_bn on one network: datadep at 0.97 (its best at lrs[1], 0.96 elsewhere), proposed at
    ``proposed_acc(lr, seed)``, both over three seeds, trained (final loss 0.1); claim 10's finding."""
    cfgs, outcomes = [], []
    for scheme in ("datadep", "proposed"):
        for lr in lrs:
            for seed in SEEDS:
                cfg = T1.replace(scheme=scheme, direction="orthogonal", lr=lr, seed=seed)
                acc = (0.97 if lr == lrs[1] else 0.96) + 0.001 * seed if scheme == "datadep" else proposed_acc(lr, seed)
                cfgs.append(cfg)
                outcomes.append(_outcome(cfg, acc, 0.1))
    with Store(path) as store:
        store.add("table1_wn_vs_bn", "medium", cfgs)
        for out in outcomes:
            assert leases.finish(store, out)
    with Store(path, create=False) as store:
        return next(c for c in claim_book.judge_all(store) if c.number == 10)


def test_table1_a_worse_proposed_at_a_bracketing_grid_does_not_hold(tmp_path):
    # proposed best at the middle rate, 0.93: below datadep's 0.97 on every seed
    claim = _table1_claim(tmp_path / "s.db", lambda lr, seed: (0.93 if lr == LRS[1] else 0.90) + 0.001 * seed)
    assert claim.verdict == FAILS, claim.detail
    assert "best on a grid edge" not in claim.detail


def test_table1_a_worse_proposed_whose_best_rate_is_on_the_grid_edge_is_inconclusive(tmp_path):
    # the same accuracies, proposed's best now at the grid's largest rate: a larger one could be better
    claim = _table1_claim(tmp_path / "s.db", lambda lr, seed: (0.93 if lr == LRS[-1] else 0.90) + 0.001 * seed)
    assert claim.verdict == INCONCLUSIVE, claim.detail
    assert "ResNet-20/digits proposed lr=0.01" in claim.detail.split("best on a grid edge")[-1], claim.detail


def test_table1_a_better_proposed_holds_even_on_the_grid_edge(tmp_path):
    claim = _table1_claim(tmp_path / "s.db", lambda lr, seed: (0.99 if lr == LRS[-1] else 0.95) + 0.001 * seed)
    assert claim.verdict == HOLDS, claim.detail


def test_guard_outcomes_follow_the_rules():
    from wninit.suite.report.scope import guard, on_plateau
    from wninit.suite.report.stats import UNDECIDED

    cell = tables.DepthCell(tables.Stat(), tables.Stat(), {}, {}, 1, runs=[], edges={"lr": 0.001})
    assert guard(False, [cell], {}, 10) == EDGE and guard(True, [cell], {}, 10) is True
    assert guard(UNDECIDED, [cell], {}, 10) == UNDECIDED
    run = type("Run", (), {"id": "r", "status": "completed"})()
    flat = tables.DepthCell(tables.Stat(), tables.Stat(), {}, {}, 1, runs=[run], edges={})
    assert guard(True, [flat, cell], {"r": LN10}, 10, better=flat) == PLATEAU  # a win from the plateau
    assert guard(True, [flat, cell], {"r": LN10}, 10, better=cell) is True  # the loser's plateau is the claim
    assert guard(True, [flat], {"r": 1.0}, 10, better=flat) is True  # a winner that trained
    assert on_plateau(LN10 + 0.049, 10) and not on_plateau(LN10 - 0.051, 10) and not on_plateau(float("nan"), 10)
    assert on_plateau(math.log(100), 100)


@pytest.mark.parametrize("number", range(1, 13))
def test_every_claim_is_defined_once_and_the_renderer_reads_it(number):
    import wninit.suite.report.render as render

    spec = claim_book.claim_spec(number)
    assert [c.number for c in claim_book.CLAIMS] == list(range(1, 13))
    assert len({c.name for c in claim_book.CLAIMS}) == 12
    source = open(render.__file__).read()
    assert spec.name not in source  # the renderer takes the names from claim_book, it does not restate them


# -- an experiment with runs still to run is "not run", not judged on part of it -----------------------------------
HESSIAN = RunConfig(dataset="digits", arch="resnet", depth=20, task="hessian", batch_size=64, epochs=1)


def _hessian_store(path, pending_seeds):
    """table2_hessian with proposed and datadep at seeds 1-5; datadep's ``pending_seeds`` not run yet. The five
    seeds separate the two (Welch p < 0.05); its first three alone, with their wide spread, do not."""
    norms = {"proposed": [0.0, 1.5, -1.5, -0.1, 0.1], "datadep": [1.0, 2.5, -0.5, 3.0, 3.2]}
    with Store(path) as store:
        cfgs = [HESSIAN.replace(scheme=s, seed=seed) for s in norms for seed in range(1, 6)]
        store.add("table2_hessian", "quick", cfgs)
        for cfg in cfgs:
            if not (cfg.scheme == "datadep" and cfg.seed in pending_seeds):
                out = {"run_id": cfg.run_id, "status": "completed", "wall_s": 1.0, "epochs": [],
                       "metrics": {"log_hessian_norm": norms[cfg.scheme][cfg.seed - 1]}}
                assert leases.finish(store, out)
    with Store(path, create=False) as store:
        return next(c for c in claim_book.judge_all(store) if c.number == 11)


def test_a_claim_with_runs_not_yet_run_reads_not_run_and_says_how_many_finished(tmp_path):
    partial = _hessian_store(tmp_path / "partial.db", pending_seeds=(4, 5))
    assert partial.verdict == NOT_RUN, partial.detail
    assert partial.detail.startswith("incomplete: 8 of 10 runs of table2_hessian (quick) finished, 2 not run yet")
    assert partial.detail.endswith(f"(so far: {INCONCLUSIVE})")  # the partial store's reading, named, not the verdict
    complete = _hessian_store(tmp_path / "complete.db", pending_seeds=())
    assert complete.verdict == HOLDS, complete.detail


def test_a_contradiction_must_survive_holms_correction_over_the_claims_tests():
    """One test of m against the claim at p < 0.05 happens by chance up to m x 0.05 of the time: alone it
    contradicts, among eight it must pass Holm's step-down (p < 0.05/8 for the smallest)."""
    from wninit.suite.report.stats import NOT_AFTER_HOLM, UNDECIDED, decide_family

    weak, null, strong = (0.964, 0.036), (0.5, 0.5), (0.999, 0.001)
    assert decide_family([weak]) == [False]
    assert decide_family([weak] + [null] * 7) == [NOT_AFTER_HOLM] + [UNDECIDED] * 7
    assert decide_family([strong] + [null] * 7)[0] is False  # 0.001 < 0.05/8
    # step-down: after the smallest is rejected, the next is tested at 0.05/(m-1)
    assert decide_family([(0.99, 0.006), (0.99, 0.007), (0.01, 0.99)]) == [False, False, True]
    assert decide_family([(0.99, 0.006), (0.99, 0.03), (0.01, 0.99)]) == [False, NOT_AFTER_HOLM, True]
    assert decide_family([(None, None), weak]) == [None, False]  # an untested part is not in the family


def test_table1_one_weak_contradiction_among_the_networks_is_inconclusive(tmp_path):
    """Claim 10 over several networks is one family: proposed worse on one network at p about 0.03, and no
    different on three others, does not make the claim "not hold"."""
    cfgs, outcomes = [], []
    for depth in (20, 32, 44, 56):
        for scheme in ("datadep", "proposed"):
            for lr in LRS:
                for seed in (1, 2, 3, 4, 5, 6):
                    cfg = T1.replace(depth=depth, scheme=scheme, direction="orthogonal", lr=lr, seed=seed)
                    jitter = 0.004 * ((seed * 7 + depth) % 5 - 2)
                    worse = 0.008 if (depth, scheme) == (32, "proposed") else 0.0
                    acc = (0.97 if lr == LRS[1] else 0.95) + jitter - worse
                    cfgs.append(cfg)
                    outcomes.append(_outcome(cfg, acc, 0.1))
    with Store(tmp_path / "s.db") as store:
        store.add("table1_wn_vs_bn", "medium", cfgs)
        for out in outcomes:
            assert leases.finish(store, out)
    with Store(tmp_path / "s.db", create=False) as store:
        claim = next(c for c in claim_book.judge_all(store) if c.number == 10)
    assert claim.verdict == INCONCLUSIVE, claim.detail
    assert "ResNet-32/digits: proposed" in claim.detail and "not after Holm's correction" in claim.detail
