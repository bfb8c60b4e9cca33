"""`wninit bench [--quick] [--only NAME,...] [--list] [--out DIR]`: every speed benchmark, one command, one JSON.

The benchmarks ship with the package (`wninit.suite.bench`, one module per benchmark, each exposing
`run(quick) -> dict` and `table(result) -> str`). This command runs the chosen ones in this process one after
the other, prints each table and writes all results to `DIR/bench.json`. A benchmark that fails is reported and
the others still run.
"""
from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import json
import os
import pkgutil
import time
import traceback
from pathlib import Path

from wninit.suite._files import atomic_write_text
from wninit.errors import UserError

__all__ = ["add_arguments", "run", "discover", "PACKAGE", "HELPERS"]

HELP = "run the speed benchmarks"  # its line in `wninit --help`
PACKAGE = "wninit.suite.bench"  # where the benchmarks live
HELPERS = ("common", "reference_pipeline")  # modules of the package that are not benchmarks


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true", help="fewer sizes and rounds (minutes instead of tens of minutes)")
    p.add_argument("--only", default=None, metavar="NAME,...",
                   help="run only these, e.g. wn,flops (the names --list prints)")
    p.add_argument("--list", action="store_true", help="print each benchmark's name and what it measures, run none")
    p.add_argument("--out", default="wninit-out/bench", metavar="DIR", help="folder for bench.json (default: %(default)s)")


def discover(package: str | None = None) -> dict[str, str]:
    """NAME -> dotted module name of every benchmark of `package` (PACKAGE by default), sorted by name; nothing is
    imported but the package itself."""
    package = package or PACKAGE
    path = importlib.import_module(package).__path__
    return {m.name: f"{package}.{m.name}" for m in sorted(pkgutil.iter_modules(path), key=lambda m: m.name)
            if not m.ispkg and m.name not in HELPERS and not m.name.startswith("_")}


def summary_line(module: str) -> str:
    """The first line of a benchmark's docstring, read from its source without importing it (and its extras)."""
    origin = importlib.util.find_spec(module).origin
    doc = ast.get_docstring(ast.parse(Path(origin).read_text(encoding="utf-8"))) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def _choose(found: dict[str, str], only: str | None) -> list[str]:
    if not only:
        return list(found)
    names = [n.strip().removeprefix("bench_").removesuffix(".py") for n in only.split(",") if n.strip()]
    unknown = [n for n in names if n not in found]
    if unknown:
        raise UserError(f"no benchmark named {', '.join(map(repr, unknown))}: choose from {', '.join(found)}")
    return names


def _load(module_name: str):
    module = importlib.import_module(module_name)
    if not callable(getattr(module, "run", None)):
        raise UserError(f"{module_name} has no run(quick) function: every benchmark must expose run(quick) -> dict")
    return module


def _text(module, result: dict) -> str:
    if callable(getattr(module, "table", None)):
        return module.table(result)
    return json.dumps(result, indent=2, default=str)


def run(args: argparse.Namespace) -> int:
    found = discover()
    if args.list:
        width = max(map(len, found), default=0)
        for name, module in found.items():
            print(f"{name:<{width}}  {summary_line(module)}")
        return 0
    names = _choose(found, args.only)
    results: dict[str, dict] = {}
    failed = []
    for name in names:
        print(f"== {name}{' (quick)' if args.quick else ''} ==", flush=True)
        start = time.perf_counter()
        try:
            module = _load(found[name])
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
