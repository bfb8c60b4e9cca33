"""`wninit --help` start-up time: this tree beside a git ref's (by default the one before the lazy imports),
and a bare `python -c pass`, side by side in one run.

Each round runs every variant once, in turn, as a fresh process; the table gives the median over rounds of
the wall time and of the process's CPU time (user + system, robust to other processes on a shared machine).

Run: `python benchmarks/bench_cli_help.py [--ref REF] [--rounds 5]`, from the repository root.
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _timed(argv: list[str], src: Path | None) -> tuple[float, float]:
    env = dict(os.environ, PYTHONPATH=str(src) if src else "")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _checkout(ref: str, into: Path) -> Path:
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "src"], capture_output=True, check=True).stdout
    path = into / "ref.tar"
    path.write_bytes(archive)
    with tarfile.open(path) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


def measure(ref: str, rounds: int) -> dict[str, tuple[float, float]]:
    with tempfile.TemporaryDirectory() as tmp:
        variants = {"python -c pass": ([sys.executable, "-c", "pass"], None),
                    f"wninit --help ({ref})": ([sys.executable, "-m", "wninit", "--help"], _checkout(ref, Path(tmp))),
                    "wninit --help (this tree)": ([sys.executable, "-m", "wninit", "--help"], ROOT / "src")}
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
        for _ in range(rounds):
            for name, (argv, src) in variants.items():
                times[name].append(_timed(argv, src))
    return {name: (statistics.median(w for w, _ in t), statistics.median(c for _, c in t)) for name, t in times.items()}


BEFORE = "26b430b"  # the tree before `import wninit` was made lazy


def run(quick: bool = False, ref: str = BEFORE, rounds: int | None = None) -> dict:
    rounds = rounds or (3 if quick else 5)
    return {"ref": ref, "rounds": rounds, "times": measure(ref, rounds), "load": os.getloadavg()[0]}


def table(result: dict) -> str:
    lines = [f"{'variant':32}  {'wall s':>7}  {'cpu s':>6}   (median of {result['rounds']}; load {result['load']:.1f})"]
    lines += [f"{name:32}  {wall:7.3f}  {cpu:6.3f}" for name, (wall, cpu) in result["times"].items()]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ref", default=BEFORE, help="the git ref to compare with (default: before the change)")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(table(run(ref=args.ref, rounds=args.rounds)))


if __name__ == "__main__":
    main()
