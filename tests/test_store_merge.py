"""Stores gathered into one (`wninit merge`): a sweep split over two stores, merged, equals the same sweep run
into one store, run by run and epoch by epoch; a run finished in both with different metrics stops the merge
with nothing written; sources are left as they were."""
import json
import shutil
import sqlite3

import pytest

from wninit.errors import UserError
from wninit.suite.cli import main
from wninit.suite.sweep import Store
from tiny_specs import tiny_spec

SPEC = tiny_spec("merge", """
    [grid]
    seed = [1, 2, 3, 4]
    [profiles.quick]
""")


def _content(path):
    """Every run's id, status, metrics and epochs, and the memberships: what a report reads."""
    with Store(path, create=False) as store:
        runs = {r.id: (r.status, r.metrics, store.epochs(r.id)) for r in store.runs()}
        members = sorted(tuple(m) for m in store.conn.execute("SELECT * FROM memberships"))
    return runs, members


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("merge")
    spec = tmp / "merge.toml"
    spec.write_text(SPEC)
    whole, part = tmp / "whole.db", tmp / "part.db"
    sweep = ["sweep", str(spec), "--workers", "1", "--no-progress"]
    assert main([*sweep, "--store", str(whole)]) == 0
    assert main([*sweep, "--store", str(part), "--limit", "2"]) == 0  # 2 finished, 2 still pending
    return whole, part


def test_a_split_sweep_merged_equals_the_whole(stores, tmp_path, capsys):
    whole, part = stores
    before = part.read_bytes()
    into = tmp_path / "into.db"
    assert main(["merge", str(into), str(part)]) == 0
    assert "2 finished runs copied, 2 unfinished runs added as pending" in capsys.readouterr().out
    runs, _ = _content(into)
    assert sorted(s for s, _, _ in runs.values()) == ["completed", "completed", "pending", "pending"]
    assert main(["merge", str(into), str(whole)]) == 0
    assert "2 finished runs copied, 0 unfinished runs added as pending, 2 already here" in capsys.readouterr().out
    assert _content(into) == _content(whole)  # every run, its metrics, its epochs and the memberships
    assert part.read_bytes() == before  # a source is read, never written
    with Store(into) as store:
        assert all(r["claimed_by"] is None for r in store.conn.execute("SELECT claimed_by FROM runs"))


def test_a_run_finished_twice_with_other_metrics_stops_the_merge(stores, tmp_path, capsys):
    whole, part = stores
    into, other = tmp_path / "into.db", tmp_path / "other.db"
    shutil.copy(whole, into)
    shutil.copy(whole, other)
    with sqlite3.connect(other) as conn:
        run_id, metrics = conn.execute("SELECT id, metrics FROM runs WHERE status='completed' LIMIT 1").fetchone()
        edited = dict(json.loads(metrics), test_acc=0.123)
        conn.execute("UPDATE runs SET metrics=? WHERE id=?", (json.dumps(edited), run_id))
    before = _content(into)
    with pytest.raises(UserError, match=f"^run {run_id} is finished in both .* with different metrics"):
        Store(into).absorb(other)
    assert _content(into) == before  # nothing written
    assert main(["merge", str(into), str(other)]) == 2
    assert "with different metrics" in capsys.readouterr().err


def test_merge_refuses_a_missing_source_or_itself(tmp_path, capsys):
    into = tmp_path / "into.db"
    assert main(["merge", str(into), str(tmp_path / "nope.db")]) == 2
    assert "nope.db does not exist" in capsys.readouterr().err
    Store(into).close()
    assert main(["merge", str(into), str(into)]) == 2
    assert "is the store being merged into" in capsys.readouterr().err
