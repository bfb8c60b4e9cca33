"""`wninit bench [--quick] [--only NAME,...] [--out DIR]`: every speed benchmark, one command, one JSON.

The benchmarks are scripts of the source checkout (`benchmarks/bench_<name>.py` beside `src/`), not
part of the installed package: each exposes `run(quick) -> dict` and, usually, `table(result) -> str`.
This command finds them, runs the chosen ones in this process one after the other, prints each table and
writes all results to `DIR/bench.json`. A benchmark that fails is reported and the others still run.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
import traceback
from pathlib import Path

from wninit.suite._files import atomic_write_text
from wninit.errors import UserError

__all__ = ["add_parser", "run", "benchmarks_dir", "discover"]

HELP = "run the speed benchmarks of the source checkout"  # its line in `wninit --help`


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("bench", help=HELP,
                              description="Run the speed benchmarks of the source checkout "
                              "(benchmarks/bench_*.py): print each table, write DIR/bench.json.")
    p.add_argument("--quick", action="store_true", help="fewer sizes and rounds (minutes instead of tens of minutes)")
    p.add_argument("--only", default=None, metavar="NAME,...",
                   help="run only these, e.g. wn,flops (the NAME of benchmarks/bench_NAME.py)")
    p.add_argument("--out", default="wninit-out/bench", metavar="DIR", help="folder for bench.json (default: %(default)s)")
    return p


def benchmarks_dir() -> Path:
    """`benchmarks/` of the repository this package is installed from (editable install)."""
    root = Path(__file__).resolve().parents[4]  # src/wninit/suite/cli/bench.py -> the repository
    folder = root / "benchmarks"
    if not ((root / "src" / "wninit").is_dir() and folder.is_dir()):
        raise UserError("the benchmarks ship with the source checkout, not the installed package: clone the "
                        "repository, `pip install -e .` it and run `wninit bench` there")
    return folder


def discover(folder: Path) -> dict[str, Path]:
    """NAME -> path of every `bench_NAME.py` in `folder`, sorted by name."""
    return {p.stem[len("bench_"):]: p for p in sorted(folder.glob("bench_*.py"))}


def _choose(found: dict[str, Path], only: str | None) -> list[str]:
    if not only:
        return list(found)
    names = [n.strip().removeprefix("bench_").removesuffix(".py") for n in only.split(",") if n.strip()]
    unknown = [n for n in names if n not in found]
    if unknown:
        raise UserError(f"no benchmark named {', '.join(map(repr, unknown))}: choose from {', '.join(found)}")
    return names


def _load(name: str, path: Path):
    # The benchmark files import their shared helpers (benchmarks/common.py) as top-level modules.
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    spec = importlib.util.spec_from_file_location(f"wninit_benchmarks.bench_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not callable(getattr(module, "run", None)):
        raise UserError(f"{path} has no run(quick) function: every benchmark must expose run(quick) -> dict")
    return module


def _text(module, result: dict) -> str:
    if callable(getattr(module, "table", None)):
        return module.table(result)
    return json.dumps(result, indent=2, default=str)


def run(args: argparse.Namespace) -> int:
    found = discover(benchmarks_dir())
    names = _choose(found, args.only)
    results: dict[str, dict] = {}
    failed = []
    for name in names:
        print(f"== bench_{name}{' (quick)' if args.quick else ''} ==", flush=True)
        start = time.perf_counter()
        try:
            module = _load(name, found[name])
            result = module.run(args.quick)
            print(_text(module, result), flush=True)
        except UserError:
            raise
        except Exception as exc:  # one broken benchmark must not hide the others' numbers
            traceback.print_exc()
            failed.append(name)
            result = {"error": f"{type(exc).__name__}: {exc}"}
        results[name] = {"seconds": time.perf_counter() - start, **result}
        print(flush=True)
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "bench.json")
    atomic_write_text(Path(path), json.dumps({"quick": args.quick, "benchmarks": results}, indent=2, default=str))
    print(f"wrote {path}" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0
