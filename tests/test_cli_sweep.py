"""``wninit sweep --dry-run`` reads a store when there is one and never creates one."""
from wninit.suite.cli import main
from wninit.suite.sweep.store import Store


def test_a_dry_run_creates_no_store(tmp_path, capsys):
    missing, empty = tmp_path / "sub" / "new.db", tmp_path / "empty.db"
    empty.write_bytes(b"")
    for store in (missing, empty):
        assert main(["sweep", "fig2_mlp_depth", "--dry-run", "--store", str(store)]) == 0
        assert f"none of them is finished: {store} holds no store yet" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.db"] and empty.read_bytes() == b""


def test_a_dry_run_counts_the_finished_runs_of_an_existing_store(tmp_path, capsys):
    db = tmp_path / "s.db"
    Store(db).close()
    assert main(["sweep", "fig2_mlp_depth", "--dry-run", "--store", str(db)]) == 0
    assert f"0 of them are already finished in {db}" in capsys.readouterr().out
