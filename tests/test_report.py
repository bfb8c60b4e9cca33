"""wninit report: a small REAL store (tiny fits on the real 8x8 digits, Hessian runs, a diverged, a failed and
a pending run) renders every figure as a sane PNG, its tables hold the stored numbers (recomputed here
from store.runs()), failures are counted, bad input is one sentence and exit 2."""
import math
import os
import re
import sqlite3
import statistics
import struct

import pytest
import torch

from wninit.suite.cli import main
from wninit.suite.report import claim_book
from wninit.suite.report import claims as C
from wninit.suite.report import tables
from wninit.suite.report.render import render_report
from wninit.suite.sweep import leases
from wninit.suite.sweep.store import Store
from wninit.suite.sweep.worker import run_one
from wninit.suite.train.config import RunConfig

BASE = RunConfig(dataset="digits", arch="mlp", width=16, epochs=1, lr=0.05, momentum=0.9, batch_size=64)
TRAIN = [BASE.replace(depth=d, scheme=s, direction="orthogonal", seed=seed)
         for d in (1, 3) for s in ("proposed", "datadep") for seed in (1, 2)]
DIVERGED = BASE.replace(depth=3, scheme="datadep", lr=1e4, seed=1)  # a real NaN in the first epoch
FAILED = BASE.replace(depth=2, scheme="proposed", seed=1)  # marked failed through the store API
PENDING = BASE.replace(depth=2, scheme="proposed", seed=2)  # never run
HESSIAN = [RunConfig(dataset="digits", arch="mlp", depth=2, width=16, task="hessian", scheme=s, hessian_iters=4,
                     hessian_batches=1, batch_size=64, epochs=1, seed=seed)
           for s in ("proposed", "pytorch-default") for seed in (1, 2)]
# Every layout reuses the same runs under another experiment name: a run is stored once, each
# experiment lists it, so one cheap store exercises every table and figure.
FIGURES = ("fig2_mlp_depth-quick.png", "fig2_mlp_hparams-quick.png", "fig3_depth_10k-quick.png",
           "fig3_lr_warmup-quick.png")


def _execute(store, experiment):
    owner = leases.owner_id()
    while True:
        cfgs = leases.claim(store, owner, 1, experiment=experiment)
        if not cfgs:
            return
        cfg = cfgs[0]
        if cfg.run_id == FAILED.run_id:
            leases.give_up(store, owner, cfg.run_id, "RuntimeError: injected failure for the report test")
            continue
        out = run_one(cfg.to_dict(), threads=1)
        assert out["status"] != "failed", out.get("error")
        leases.finish(store, out)


def _build(path):
    with Store(path) as store:
        store.add("fig2_mlp_depth", "quick", TRAIN + [DIVERGED, FAILED])
        store.add("table2_hessian", "quick", HESSIAN)
        _execute(store, "fig2_mlp_depth")
        _execute(store, "table2_hessian")
        store.add("fig2_mlp_depth", "quick", [PENDING])
        for name in ("fig2_mlp_hparams", "fig3_depth_10k", "fig3_lr_warmup", "table1_wn_vs_bn"):
            store.add(name, "quick", TRAIN + [DIVERGED])


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    """Built once per session: under xdist the workers share it through their common temp folder."""
    from filelock import FileLock

    torch.set_num_threads(1)
    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    path, done = root / "report_store.db", root / "report_store.done"
    with FileLock(str(root / "report_store.lock")):
        if not done.exists():
            _build(path)
            done.touch()
    return path


@pytest.fixture(scope="module")
def report(store_path, tmp_path_factory):
    return render_report(store_path, tmp_path_factory.mktemp("out"))


def _png_size(path):
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path.name} is not a PNG"
    return struct.unpack(">II", head[16:24])


def test_every_figure_is_a_sane_png(report):
    out = report.path.parent
    assert sorted(p.name for p in report.figures) == sorted(FIGURES)
    text = report.path.read_text()
    for name in FIGURES:
        width, height = _png_size(out / name)
        assert width >= 600 and height >= 300, (name, width, height)
        assert (out / name).stat().st_size > 10_000
        assert f"]({name})" in text  # the report shows it


def test_store_holds_what_the_fixture_wrote(store_path):
    with Store(store_path) as store:
        status = {r.id: r.status for r in store.runs()}
    assert status[DIVERGED.run_id] == "diverged"
    assert status[FAILED.run_id] == "failed"
    assert status[PENDING.run_id] == "pending"
    assert all(status[c.run_id] == "completed" for c in TRAIN + HESSIAN)


def _row(text, *cells):
    """The markdown row that starts with ``cells``."""
    prefix = "| " + " | ".join(map(str, cells)) + " |"
    rows = [line for line in text.splitlines() if line.startswith(prefix)]
    assert len(rows) == 1, (prefix, rows)
    return rows[0]


def _mean_std(values):
    return statistics.fmean(values), statistics.stdev(values)


def test_depth_table_holds_the_stored_numbers(store_path, report):
    text = report.path.read_text().split("`fig2_mlp_depth`")[1].split("\n## ")[0]
    with Store(store_path) as store:
        runs = store.runs("fig2_mlp_depth", "quick")
    for scheme, label in (("proposed", "Proposed (orthogonal)"), ("datadep", "Data-dependent (orthogonal)")):
        for depth in (1, 3):
            # independent recomputation: the lr=0.05 configuration (the diverged lr=1e4 one has val 0, so
            # it is never chosen), mean and sample std over its two seeds
            cell = [r for r in runs if r.config.scheme == scheme and r.config.depth == depth and r.config.lr == 0.05]
            assert len(cell) == 2
            for metric, column in (("test_acc", 2), ("train_acc", 3)):
                mean, std = _mean_std([r.metrics[metric] for r in cell])
                row = _row(text, label, depth).split(" | ")
                assert row[column] == f"{mean:.3f} ± {std:.3f} (n=2)", (label, depth, metric, row)
    # the diverged run is in its cell's grid count, and the failed and pending runs are counted
    assert "n=3; 1 diverged" in _row(text, "Data-dependent (orthogonal)", 3)
    assert "n=0; 1 failed, 1 not run" in _row(text, "Proposed (orthogonal)", 2)


def test_a_diverged_run_counts_its_best_checkpoint_and_zero_only_without_one():
    late = type("R", (), {})()  # diverged at epoch 1: its epoch-0 checkpoint was tested (the reference's record)
    late.config, late.status, late.metrics = BASE, "diverged", {"test_acc": 0.7, "best_val_acc": 0.65, "epochs_done": 1}
    early = type("R", (), {})()  # diverged in its first epoch: no checkpoint (the reference's -1)
    early.config, early.status, early.metrics = BASE, "diverged", {"test_acc": None, "best_val_acc": None, "epochs_done": 0}
    ok = type("R", (), {"config": BASE, "status": "completed", "metrics": {"test_acc": 0.9, "best_val_acc": 0.9}})()
    cell = tables.depth_sweep([late, early, ok])[(("proposed", "orthogonal"), BASE.depth)]
    assert cell.test.values == [0.7, 0.0, 0.9] and cell.test.counts == {"diverged": 2, "completed": 1}
    assert math.isclose(cell.test.std, statistics.stdev([0.7, 0.0, 0.9]))


def test_hessian_table_holds_the_stored_numbers(store_path, report):
    text = report.path.read_text().split("`table2_hessian`")[1]
    with Store(store_path) as store:
        runs = store.runs("table2_hessian", "quick")
    for scheme, label in (("proposed", "Proposed (orthogonal)"), ("pytorch-default", "PyTorch default (orthogonal)")):
        mean, std = _mean_std([r.metrics["log_hessian_norm"] for r in runs if r.config.scheme == scheme])
        assert _row(text, "digits", "MLP-2", label).endswith(f"| {mean:.2f} ± {std:.2f} (n=2) |")


def test_failures_are_counted_and_claims_rendered(report):
    text = report.path.read_text()
    header = text.splitlines()[2]
    assert "1 diverged, 1 failed, 1 not run" in header, header
    assert "injected failure" in text  # the failed run's error is shown
    assert len(report.claims) == 12 and [c.number for c in report.claims] == list(range(1, 13))
    verdicts = {c.number: c.verdict for c in report.claims}
    assert verdicts[4] == C.HOLDS and verdicts[12] == C.NOT_RUN and verdicts[6] == C.NOT_RUN
    rows = [line for line in (report.path.parent / "claims.md").read_text().splitlines() if re.match(r"\| \d+ \|", line)]
    assert len(rows) == 12


def _test_accs(runs, scheme, depth):
    return [r.metrics["test_acc"] for r in runs
            if r.config.scheme == scheme and r.config.depth == depth and r.config.lr == 0.05 and r.status == "completed"]


def _part(claim, start):
    """The one part of a claim's detail that starts with ``start``."""
    (part,) = [p for p in claim.detail.split("; ") if p.startswith(start)]
    return part


def test_claims_on_the_store_follow_its_numbers(store_path, report):
    """The store's numbers contradict claims 5 and 11 (datadep trains at the deepest depth of the tiny sweep;
    proposed has the larger Hessian norm), so both must say "does not hold", naming the contradicted part; claim 5
    says it of its finished runs, and reads "not run" while its pending run waits.
    The contradictions are recomputed here from the stored runs with scipy, at the claims' level 0.05."""
    from scipy import stats

    claims = {c.number: c for c in report.claims}
    with Store(store_path) as store:
        depth_runs, hessian_runs = store.runs("fig2_mlp_depth", "quick"), store.runs("table2_hessian", "quick")
    # claim 5 needs datadep to fail at depth 3 (mean below chance + 0.1 = 0.2): its one-sided 95% lower bound clears 0.2
    datadep = _test_accs(depth_runs, "datadep", 3)
    lower = statistics.fmean(datadep) - stats.t.ppf(0.95, len(datadep) - 1) * statistics.stdev(datadep) / math.sqrt(len(datadep))
    assert len(datadep) == 2 and lower >= 0.2, datadep
    assert claims[5].verdict == C.NOT_RUN and claims[5].detail.endswith(f"(so far: {C.FAILS})"), claims[5].detail
    finished = claim_book.Evidence([r for r in depth_runs if r.status in ("completed", "diverged")], dataset="digits")
    claim5 = claim_book.claim_spec(5).judge(finished)
    assert claim5.verdict == C.FAILS, claim5.detail
    assert _part(claim5, "Data-dependent (orthogonal)").endswith("[fails]"), claim5.detail
    # claim 11 needs proposed's log Hessian norm below PyTorch default's: Welch's test says it is above
    prop, default = ([r.metrics["log_hessian_norm"] for r in hessian_runs if r.config.scheme == s]
                     for s in ("proposed", "pytorch-default"))
    assert stats.ttest_ind(prop, default, equal_var=False, alternative="greater").pvalue < 0.05, (prop, default)
    assert claims[11].verdict == C.FAILS and claims[11].detail.endswith("[fails]"), claims[11].detail
    rows = (report.path.parent / "claims.md").read_text()
    for number, verdict in ((5, C.NOT_RUN), (11, C.FAILS)):  # and claims.md says so
        assert re.search(rf"^\| {number} \| [^|]+ \| \*\*{verdict}\*\* \|", rows, re.M), number


def _theory_rows(forward_gain=1.0, draws=8):
    """Figure 1 rows on the docs/method.md §7.1 theory lines, each draw off by at most 0.1%: the judge must say
    holds, and not on a bad curve."""
    one = _theory_draw(forward_gain)
    return [r._replace(mean=r.mean * (1 + 0.001 * (d - draws // 2) / draws), draw=d) for d in range(draws) for r in one]


def _theory_draw(forward_gain):
    from wninit.diagnostics.synthetic import Figure1Row

    rows = []
    for width in (200, 1000):
        first = math.sqrt(width / 1000)  # He (g=1): sqrt(m/2n) at layer 1 from n = 500
        for i in range(1, 21):
            rows.append(Figure1Row("ff_forward", "He (g=1)", width, i, first * 0.707 ** (i - 1), 0.0))
            rows += [Figure1Row("ff_forward", init, width, i, forward_gain ** i, 0.0)
                     for init in ("Proposed (orthogonal)", "Proposed (He)")]
        for i in range(2, 20):
            rows.append(Figure1Row("ff_backward", "He (g=1)", width, i, 0.707 ** (20 - i), 0.0))
            rows += [Figure1Row("ff_backward", init, width, i, 1.0, 0.0) for init in ("Proposed (orthogonal)", "Proposed (He)")]
        for b in range(1, 41):
            rows.append(Figure1Row("resnet_forward", "He (g=1)", width, b, 1.5 ** (b / 2), 0.0))
            rows += [Figure1Row("resnet_forward", init, width, b, (1 + 1 / 40) ** (b / 2), 0.0)
                     for init in ("Proposed (orthogonal)", "Proposed (He)")]
        for b in range(2, 40):
            rows += [Figure1Row("resnet_backward", init, width, b, (1 + 1 / 40) ** ((40 - b) / 2), 0.0)
                     for init in ("Proposed (orthogonal)", "Proposed (He)")]
    return rows


def test_figure1_claims_judge_the_theory_curves():
    assert [c.verdict for c in C.figure1_claims(_theory_rows())] == [C.HOLDS] * 3
    # one draw has no interval over draws: nothing is decided
    assert [c.verdict for c in C.figure1_claims(_theory_rows(draws=1))] == [C.INCONCLUSIVE] * 3
    # a proposed forward curve that grows x1.02 per layer ends at 1.49 > 1.15: claim 1 must not hold
    assert C.figure1_claims(_theory_rows(forward_gain=1.02))[0].verdict == C.FAILS


def _cli(argv, capsys):
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    return code, err


def test_bad_inputs_are_one_sentence_and_exit_2(tmp_path, store_path, capsys):
    text = tmp_path / "notes.txt"
    text.write_text("not a database")
    foreign = tmp_path / "foreign.db"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE t(x)")
    empty = tmp_path / "empty.db"
    Store(empty).close()
    in_the_way = tmp_path / "a_file"
    in_the_way.write_text("")
    cases = {"does not exist": [str(tmp_path / "missing.db")], "not a wninit store": [str(text)],
             "not a wninit store ": [str(foreign)], "holds no runs": [str(empty)],
             "is a file": [str(store_path), "--out", str(in_the_way)],
             "cannot create output folder": [str(store_path), "--out", str(in_the_way / "sub")]}
    for needle, args in cases.items():
        code, err = _cli(["report", *args, *([] if "--out" in args else ["--out", str(tmp_path / "o")])], capsys)
        assert code == 2, (needle, code, err)
        assert len(err) == 1 and needle.strip() in err[0], (needle, err)
    assert not re.search(r"Traceback", "\n".join(err))


def _survival_cells(rows):
    """{(lr, warmup, series): Survival} from (lr, warmup, scheme, survived, finished) rows."""
    from collections import Counter
    return {(lr, w, (s, "orthogonal")): tables.Survival(k, n, Counter(completed=n), 3) for lr, w, s, k, n in rows}


def test_survival_claim_orders_schemes_and_never_holds_on_missing_runs():
    full = [(lr, w, s, k, 3) for lr in (0.01, 0.1) for w in (False, True)
            for s, k in (("proposed", 3), ("datadep", 3 if lr == 0.01 and w else 0))]
    assert C.survival_claim(_survival_cells(full), "test").verdict == C.HOLDS
    beaten = [(lr, w, s, 3 if s == "datadep" else k, n) for lr, w, s, k, n in full]  # datadep always survives
    beaten = [(lr, w, s, 0 if (s == "proposed" and lr == 0.1 and not w) else k, n) for lr, w, s, k, n in beaten]
    # 3 of 6 against 6 of 6 is Fisher p = 0.09 against proposed: too few seeds to decide either way
    assert C.survival_claim(_survival_cells(beaten), "test").verdict == C.INCONCLUSIVE
    # the same rates over 10 seeds per cell (10/20 against 20/20, p < 1e-3) contradict the claim
    beaten10 = [(lr, w, s, k * 10 // 3, 10) for lr, w, s, k, n in beaten]
    claim = C.survival_claim(_survival_cells(beaten10), "test")
    assert claim.verdict == C.FAILS and "Fisher" in claim.test
    missing = [r for r in full if not (r[0] == 0.1 and r[1] and r[2] == "proposed")]  # a cell still pending
    assert C.survival_claim(_survival_cells(missing), "test").verdict == C.NOT_RUN


def test_figure1_draws_the_proposed_init_in_the_proposed_schemes_colours():
    from wninit.suite.report.plots import scheme_style
    from wninit.diagnostics.plot import FIGURE1_COLOURS

    assert FIGURE1_COLOURS["Proposed (orthogonal)"] == scheme_style(("proposed", "orthogonal"))["color"]
    assert FIGURE1_COLOURS["Proposed (He)"] == scheme_style(("proposed", "gaussian"))["color"]
    others = {scheme_style((s, d))["color"] for s in ("datadep", "hanin", "pytorch-default", "proposed-backward")
              for d in ("orthogonal", "gaussian")}
    assert FIGURE1_COLOURS["He (g=1)"] not in others


def test_gain_claim_holds_and_leaves_the_global_rng_as_it_found_it():
    """Claim 4 seeds its own models' default init: the caller's RNG state is the same after, and the claim's
    numbers do not depend on it."""
    claims = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        before = torch.get_rng_state()
        claims.append(C.gain_claim())
        assert torch.equal(torch.get_rng_state(), before)
    assert claims[0] == claims[1] and claims[0].verdict == C.HOLDS
