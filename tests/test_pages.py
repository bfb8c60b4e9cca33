"""The published results are renders of the committed stores (docs/stores/) by the committed code.

- Each rendered block of docs/claims.md and docs/results.md equals what wninit.suite.report.pages renders from the
  stores now: a change to the judging or the tables that moves a published number, or a stored result edited
  by hand, leaves the page stale and this fails (shown here on copies with one stored result edited).
- A sample of the stored runs, rerun by ``wninit rerun`` with the current code on this machine, equals the stored
  metrics and epochs bit for bit: a change to the training that moves a result fails it (and an edited stored
  result, shown on a copy). The stored runs were made on this development machine's CPU with one torch thread
  per run; on a CPU with another instruction set the float sums may differ in their last bits (docs/claims.md).
"""
import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from wninit.suite.cli import main
from wninit.suite.report import pages
from wninit.suite.sweep.store import Store
from wninit.suite.train.runtime import kernel_isa

ROOT = Path(__file__).resolve().parents[1]


def _copy_repo(tmp_path) -> Path:
    """docs/ pages and stores copied under tmp_path, laid out as in the repository."""
    (tmp_path / "docs").mkdir()
    for name, (page, _) in pages.BLOCKS.items():
        shutil.copy(ROOT / page, tmp_path / page)
    shutil.copytree(ROOT / pages.STORES, tmp_path / pages.STORES)
    return tmp_path


def _edit_one_result(db: Path, experiment: str, run_id: str | None = None) -> str:
    """Move each stored metric of one finished run of ``experiment`` (``run_id``, else the first) by 0.25 and set
    every epoch's training loss to 0.5, as a hand edit would; its id. 0.25 moves a mean over up to 25 seeds by
    at least 0.01, which the pages' two decimals always show."""
    with Store(db, create=False) as store:
        run = next(r for r in store.runs(experiment) if r.status == "completed" and run_id in (None, r.id))
    metrics = {k: v + 0.25 if isinstance(v, float) else v for k, v in run.metrics.items()}
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE runs SET metrics=? WHERE id=?", (json.dumps(metrics), run.id))
        conn.execute("UPDATE epochs SET train_loss=0.5 WHERE run_id=?", (run.id,))
    return run.id


@pytest.mark.parametrize("name", sorted(pages.BLOCKS))
def test_each_page_equals_its_render(name):
    page, render = pages.BLOCKS[name]
    published = pages.rendered_blocks((ROOT / page).read_text(), name)
    assert published is not None, f"{page} has no rendered block {name!r}"
    assert published == render(ROOT), f"{page} is stale: run `python -m wninit.suite.report.pages` from the repository root"


@pytest.mark.parametrize("name,db,experiment", [("claims", pages.QUICK_STORE, "table2_hessian"),
                                                ("plateau", pages.BEYOND_STORE, "beyond_cnn_plateau")])
def test_an_edited_stored_result_leaves_its_page_stale(tmp_path, name, db, experiment):
    root = _copy_repo(tmp_path)
    assert name not in pages.render_pages(root, check=True)
    _edit_one_result(root / pages.STORES / db, experiment)
    assert name in pages.render_pages(root, check=True)


def _sample(root: Path) -> list[tuple[str, str]]:
    """The two cheapest finished runs of the committed stores made with this machine's kernels, as (store file
    name, run id): Hessians at init before training runs, then the shallowest and shortest, so that the sample is
    the same whatever else the stores hold. A run made with another instruction set reruns bit for bit only with
    its kernels (docs/reproducibility.md), so the stores hold runs of each instruction set the project's machines
    have (AVX2 and AVX-512), and a machine of a new one fails here until they hold some of its runs too."""
    isa, runs = kernel_isa(), []
    for db in sorted((root / pages.STORES).glob("*.db")):
        with Store(db, create=False) as store:
            runs += [(db.name, r) for r in store.runs() if r.status == "completed" and r.isa == isa]
    runs.sort(key=lambda x: (x[1].config.task != "hessian", x[1].config.depth, x[1].config.epochs, x[1].id))
    assert len(runs) >= 2, (f"the committed stores hold fewer than 2 finished runs made with {isa} kernels: sweep a "
                            "quick spec on this machine and merge its store into docs/stores/quick.db")
    return [(name, r.id) for name, r in runs[:2]]


@pytest.mark.slow  # two runs trained again (a depth-20 CNN for 15 epochs takes about 40 s of CPU)
def test_a_sample_of_the_stored_runs_reruns_bit_for_bit(tmp_path, capsys):
    root = _copy_repo(tmp_path)
    (name, same), (edited_name, edited) = _sample(root)
    assert main(["rerun", same, "--store", str(root / pages.STORES / name)]) == 0, capsys.readouterr().out
    assert "identical: every metric and every epoch row equals the stored run" in capsys.readouterr().out
    # the other, against its stored result edited by hand: rerun exits 1 and names exactly the edited values
    db = root / pages.STORES / edited_name
    with Store(db, create=False) as store:
        run = store.run(edited)
    edited_keys = {k for k, v in run.metrics.items() if isinstance(v, float)}
    _edit_one_result(db, run.experiments[0], edited)
    assert main(["rerun", edited, "--store", str(db)]) == 1
    out = capsys.readouterr().out
    diffs = [line.strip() for line in out.split("different (", 1)[1].splitlines()[1:]
             if line.startswith("  ") and "note:" not in line]
    assert diffs, out
    for line in diffs:  # "test_acc: stored 0.7673, now 0.755" or "epoch 3 train_loss: stored 0.5, now 2.31"
        key = line.split(":")[0]
        assert key in edited_keys or key.endswith(" train_loss"), line
