"""A quick-profile verdict that flips between instruction sets is said on the claims page (report/isa.py): the
store-judged claims are judged once per instruction set the runs' kernels used, per store or within one store,
and a claim judged differently on two of them is flagged; one judged alike is not, and a "not run" is no verdict
to compare.

The stores are real SQLite stores written through the sweep's own ``leases.finish``, with made-up Hessian norms
and the instruction set each run records: what is tested is the judging, not the kernels.
"""
from wninit.suite.report.isa import by_isa, flipped, isa_markdown
from wninit.suite.report.verdicts import HOLDS, INCONCLUSIVE, NOT_RUN
from wninit.suite.sweep import leases
from wninit.suite.sweep.store import Store
from wninit.suite.train.config import RunConfig

HESSIAN = RunConfig(dataset="digits", arch="resnet", depth=20, task="hessian", batch_size=64, epochs=1)
APART = {"proposed": [0.0, 0.1, -0.1, 0.05, -0.05], "datadep": [3.0, 3.1, 2.9, 3.05, 2.95]}  # Welch p < 1e-4
CLOSE = {"proposed": [0.0, 1.5, -1.5, 0.5, -0.5], "datadep": [0.5, 2.0, -1.0, 1.0, 0.0]}  # neither way


def _store(path, by_isa_norms: dict, seeds=range(1, 6), pending=()):
    """table2_hessian (quick): for each instruction set, proposed and datadep with its norms, at `seeds` (the
    first set) or the next five seeds (the second set, so that one store can hold both); `pending` run ids wait."""
    with Store(path) as store:
        for k, (isa, norms) in enumerate(by_isa_norms.items()):
            cfgs = [HESSIAN.replace(scheme=s, seed=seed + 5 * k) for s in norms for seed in seeds]
            store.add("table2_hessian", "quick", cfgs + [HESSIAN.replace(scheme="proposed", seed=99)] * bool(pending))
            for cfg in cfgs:
                out = {"run_id": cfg.run_id, "status": "completed", "wall_s": 1.0, "epochs": [],
                       "metrics": {"log_hessian_norm": norms[cfg.scheme][(cfg.seed - 1) % 5]},
                       "env": {"isa": isa, "cpu": "a CPU"}}
                assert leases.finish(store, out)
    return Store(path, create=False)


def test_a_verdict_that_flips_between_two_stores_is_flagged(tmp_path):
    stores = {"avx2.db": _store(tmp_path / "a.db", {"AVX2": APART}),
              "avx512.db": _store(tmp_path / "b.db", {"AVX512": CLOSE})}
    parts = by_isa(stores)
    assert [p.label for p in parts] == ["AVX2", "AVX512"]
    assert [p.claims[11].verdict for p in parts] == [HOLDS, INCONCLUSIVE]
    assert flipped(parts, 11) and not flipped(parts, 5)  # claim 5: "not run" on both, nothing to compare
    table = isa_markdown(parts)
    assert "| kernels AVX2 | kernels AVX512 |" in table
    row = next(line for line in table.splitlines() if line.startswith("| 11 |"))
    assert row.endswith(f"| {HOLDS} | {INCONCLUSIVE} | **flips**: {HOLDS} on AVX2; {INCONCLUSIVE} on AVX512 |")
    assert next(line for line in table.splitlines() if line.startswith("| 5 |")).endswith(f"| {NOT_RUN} | {NOT_RUN} | - |")


def test_a_verdict_that_holds_on_both_is_not_flagged(tmp_path):
    stores = {"avx2.db": _store(tmp_path / "a.db", {"AVX2": APART}),
              "default.db": _store(tmp_path / "b.db", {"DEFAULT": APART})}
    parts = by_isa(stores)
    assert [p.claims[11].verdict for p in parts] == [HOLDS, HOLDS] and not flipped(parts, 11)
    row = next(line for line in isa_markdown(parts).splitlines() if line.startswith("| 11 |"))
    assert row.endswith(f"| {HOLDS} | {HOLDS} | same on AVX2, DEFAULT |")


def test_one_store_with_runs_of_two_instruction_sets_is_split_by_them(tmp_path):
    store = _store(tmp_path / "a.db", {"AVX2": APART, "AVX512": CLOSE})
    parts = by_isa({"mixed.db": store})
    assert {p.label: p.claims[11].verdict for p in parts} == {"AVX2": HOLDS, "AVX512": INCONCLUSIVE}
    assert "Data-dependent (orthogonal) 3.00" in parts[0].claims[11].detail  # each judged on its own 10 runs
    assert "Data-dependent (orthogonal) 0.50" in parts[1].claims[11].detail and flipped(parts, 11)


def test_two_stores_of_one_instruction_set_are_told_apart_by_name_and_a_waiting_run_is_in_both(tmp_path):
    stores = {"one.db": _store(tmp_path / "a.db", {"AVX2": APART}, pending=True),
              "two.db": _store(tmp_path / "b.db", {"AVX2": CLOSE})}
    parts = by_isa(stores)
    assert [p.label for p in parts] == ["AVX2 (one.db)", "AVX2 (two.db)"]
    assert parts[0].claims[11].verdict == NOT_RUN and "1 not run yet" in parts[0].claims[11].detail
    assert not flipped(parts, 11)  # "not run" against "inconclusive" is not a flip



def test_runs_of_another_profile_add_no_column(tmp_path):
    """A store whose quick runs were made with AVX2 and whose medium runs with AVX-512 (on a second machine) is
    judged at the quick profile on AVX2 alone: the medium runs' instruction set is not a column of "not run"."""
    store = _store(tmp_path / "a.db", {"AVX2": APART})
    cfgs = [HESSIAN.replace(scheme=s, seed=seed, hessian_iters=40) for s in APART for seed in range(1, 6)]
    store.add("table2_hessian", "medium", cfgs)
    for cfg in cfgs:
        out = {"run_id": cfg.run_id, "status": "completed", "wall_s": 1.0, "epochs": [],
               "metrics": {"log_hessian_norm": APART[cfg.scheme][cfg.seed - 1]}, "env": {"isa": "AVX512", "cpu": "a CPU"}}
        assert leases.finish(store, out)
    assert [p.label for p in by_isa({"mixed.db": store})] == ["AVX2"]
    assert [p.label for p in by_isa({"mixed.db": store}, profile="medium")] == ["AVX512"]
