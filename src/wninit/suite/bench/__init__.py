"""The speed benchmarks, one module each (`wninit bench --list` names them), shipped with the package so that
`wninit bench` runs in any installation. Each exposes `run(quick) -> dict` and `table(result) -> str` (most also
`tables(result)`, the tables docs/performance.md renders); `python -m wninit.suite.bench.NAME [--quick]` runs one
with its own options. `common` holds the shared timing protocol and `reference_pipeline` the reference's
per-sample data pipeline that `data` compares against; neither is a benchmark.

Two benchmarks measure the source checkout rather than the package and stay scripts of the repository:
`benchmarks/bench_cli_help.py` (this tree's `wninit --help` beside a git ref's) and
`benchmarks/bench_trace_by_running.py` (the test zoo's models).
"""
