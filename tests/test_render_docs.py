"""docs/performance.md is rendered from the benchmarks' JSON: the renderer puts each JSON's tables, under its
machine and date, where the template places it, refuses a JSON left out or a table without its JSON, and the
committed page equals the renderer's output on the committed JSON (so the page cannot drift from its data).
No benchmark is timed here: the results are made up."""
import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _renderer():
    spec = importlib.util.spec_from_file_location("render_docs", ROOT / "benchmarks" / "render_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


render_docs = _renderer()
MACHINE = {"cpu": "Fake CPU 9000", "cpu_count": 2, "torch": "9.9.9", "torch_threads": 2, "python": "3.11",
           "device": "cpu", "load_average": 3.5, "date": "2031-01-02 03:04 UTC"}
ENSEMBLE = {"benchmark": "ensemble", "quick": True, "members": 16, "width": 128, "depth": 10, "epochs": 1, "repeats": 3,
            "threads": 2, "machine": MACHINE, "load_average_after": 4.25,
            "sides": {side: {"wall_s": wall, "wall_min_s": wall - 1, "cpu_s": wall * 2, "runs_per_hour": 57600 / wall,
                             "samples_per_s": 1000.0, "step_ms": step, "step_min_ms": step - 1}
                      for side, wall, step in (("ensemble", 10.0, 20.0), ("sequential", 25.0, 50.0))},
            "speedup_wall": 2.5, "speedup_wall_min": 2.667, "speedup_cpu": 2.5, "speedup_step": 2.5,
            "speedup_step_min": 2.526, "max_test_acc_diff": 0.0, "same_metrics": True}
STATS = {"median": 0.5, "q1": 0.45, "q3": 0.55, "spread": 0.2, "min": 0.4, "n": 3}
INIT = {"benchmark": "init", "quick": False, "machine": {**MACHINE, "date": "2030-12-31 23:59 UTC", "torch_threads": 1},
        "load_average_after": 1.0,
        "rows": [{"model": "WRN-40-10", "layers": 36, "params": 1, "build_s": 1.0, "threads": 1,
                  "stats": {"initialize": {**STATS, "median": 1.234}, "initialize, traced": {**STATS, "median": 1.5},
                            "orthogonal_": {**STATS, "median": 2.468}},
                  "initialize_same_on_every_thread_count": True, "ratio_initialize": 0.5, "ratio_traced": 1.2157,
                  "overhead_us_per_layer": -34277.8}],
        "check_initialize_no_slower_than_orthogonal_10k": True, "check_discovery_overhead_40_10": False,
        "check_traced_10k_under_10s": True}
TEMPLATE = """# Fake performance

Prose before, kept as written: 1.23x measured once.

<!-- table: ens.json -->

Between the two.

<!-- table: init_full.json -->
"""


@pytest.fixture
def bench_dir(tmp_path):
    folder = tmp_path / "bench"
    folder.mkdir()
    (folder / "template.md").write_text(TEMPLATE)
    (folder / "ens.json").write_text(json.dumps(ENSEMBLE))
    (folder / "init_full.json").write_text(json.dumps(INIT))
    return folder


def test_each_json_becomes_its_tables_under_its_machine_and_date_where_the_template_places_it(bench_dir):
    page = render_docs.render(bench_dir)
    assert page.startswith(render_docs.HEADER) and "<!-- table:" not in page
    body = page[len(render_docs.HEADER):]
    prose = ["# Fake performance", "Prose before, kept as written: 1.23x measured once.", "Between the two."]
    ens_head = ("*`docs/bench/ens.json`, quick run of `wninit.suite.bench.ensemble`, 2031-01-02 03:04 UTC: cpu, CPU Fake CPU 9000 x 2, "
                "torch 9.9.9, measured at 2 torch thread(s), load average 3.5 -> 4.25.*")
    init_head = ("*`docs/bench/init_full.json`, full run of `wninit.suite.bench.init`, 2030-12-31 23:59 UTC: cpu, CPU Fake CPU 9000 "
                 "x 2, torch 9.9.9, 1 torch threads by default, load average 3.5 -> 1.0.*")
    ens_rows = ["| side | wall s | min s | CPU s | runs/hour | samples/s | ms/step | min ms/step |",
                "| ensemble | 10.00 | 9.00 | 20.00 | 5760 | 1000 | 20.0 | 19.0 |",
                "| sequential | 25.00 | 24.00 | 50.00 | 2304 | 1000 | 50.0 | 49.0 |",
                "- whole runs: speed-up 2.50x wall (median), 2.67x (min), 2.50x CPU time; target >= 1.7x"]
    init_rows = ["**Initialization time (median of rounds)**",
                 "| WRN-40-10 | 36 | 1 | 1.234 s | 1.500 s | 2.468 s | 1.216 | 0.500 | -34278 us | 20% |",
                 "- discovery adds at most 20% on WRN-40-10: False; traced initialize on the 10,000-layer WRN under 10 s: True"]
    lines = body.splitlines()
    for line in prose + [ens_head, init_head] + ens_rows + init_rows:
        assert line in lines, line
    order = [body.index(s) for s in (prose[1], ens_head, ens_rows[1], prose[2], init_head, init_rows[1])]
    assert order == sorted(order)  # the template's order, each machine line above its own tables
    assert sum(line.startswith("| --- |") for line in lines) == 2  # one table per benchmark here


def test_a_json_left_out_of_the_template_or_a_table_without_its_json_is_refused(bench_dir):
    (bench_dir / "extra.json").write_text(json.dumps(ENSEMBLE))
    with pytest.raises(ValueError, match=r"in .* but not placed in template.md .*: extra.json"):
        render_docs.render(bench_dir)
    (bench_dir / "extra.json").unlink()
    (bench_dir / "ens.json").unlink()
    with pytest.raises(ValueError, match=r"placed in template.md but not in .*: ens.json"):
        render_docs.render(bench_dir)


def test_a_json_of_an_unknown_benchmark_is_one_sentence_and_exit_2(bench_dir, tmp_path, capsys):
    (bench_dir / "ens.json").write_text(json.dumps({**ENSEMBLE, "benchmark": "nope"}))
    assert render_docs.main(["--bench-dir", str(bench_dir), "--out", str(tmp_path / "page.md")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'nope'" in err[0] and "wninit.suite.bench.nope" in err[0]
    assert not (tmp_path / "page.md").exists()


def test_check_fails_on_a_stale_page_and_passes_once_it_is_rendered(bench_dir, tmp_path):
    page = tmp_path / "page.md"
    page.write_text(render_docs.render(bench_dir).replace("5760", "5761"))  # one number typed by hand
    args = ["--bench-dir", str(bench_dir), "--out", str(page)]
    assert render_docs.main(args + ["--check"]) == 1
    assert render_docs.main(args) == 0 and render_docs.main(args + ["--check"]) == 0


def test_the_committed_page_is_the_render_of_the_committed_json():
    committed = (ROOT / "docs" / "performance.md").read_text()
    assert committed == render_docs.render(ROOT / "docs" / "bench"), (
        "docs/performance.md differs from its JSON and template: run python benchmarks/render_docs.py")


def test_every_committed_result_records_its_machine_and_date():
    for path in sorted((ROOT / "docs" / "bench").glob("*.json")):
        machine = json.loads(path.read_text())["machine"]
        assert {"cpu", "cpu_count", "torch", "device", "date"} <= set(machine), path.name


def test_a_new_result_records_the_machine_and_the_date():
    from wninit.suite.bench.common import machine

    m = machine()
    assert m["device"] == "cpu" and m["cpu_count"] >= 1 and m["date"].endswith("UTC") and m["torch"]


def test_the_sweep_benchmark_without_a_committed_json_still_renders_its_tables(bench_dir):
    variant = {"wall_s": 100.0, "runs": 24, "diverged": 0, "load_average": [1.0, 2.0], "runs_per_hour": 864.0,
               "speedup_vs_reference": 1.0, "phases_s": {"compute": 150.0, "imports": 50.0}}
    sweep = {"benchmark": "sweep", "quick": True, "machine": MACHINE, "grid": "fig2_mlp_depth.toml quick slice", "n_runs": 24,
             "workers": 2, "passes": 1, "variants": {"reference": variant, "sweep --batch-runs": {
                 **variant, "wall_s": 20.0, "runs_per_hour": 4320.0, "speedup_vs_reference": 5.0}},
             "check_speedup_at_least_5x": True, "load_average_after": 2.0}
    (bench_dir / "sweep.json").write_text(json.dumps(sweep))
    (bench_dir / "template.md").write_text(TEMPLATE + "\n<!-- table: sweep.json -->\n")
    lines = render_docs.render(bench_dir).splitlines()
    assert "| sweep --batch-runs | 20.0 s | 4320 | 5.00x | 0 | 1.0->2.0 |" in lines
    assert "| reference | compute | 150.0 s | 75% |" in lines
    assert "- target >= 5x the reference: met (best: sweep --batch-runs, 5.00x)" in lines
