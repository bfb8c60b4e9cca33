"""The package's layering: ``import wninit`` loads only torch and numpy of the heavy libraries, the library never
imports the suite, and no module of a lower layer imports a module of a higher one.

The layers, lowest first (docs/layout.md). A module may import its own layer and the layers below it, never one
above; every import counts, at the top of a file or inside a function, absolute (``wninit.suite.sweep``) or relative
(``from ..sweep import store``). The library:

0. ``errors`` (UserError, which every layer raises);
1. ``weightnorm/`` (the formula, wninit's layers, access to g and v, conversion, state dicts);
2. ``structure/`` (tracing, roles, energy, activations: reads weight norm, never initializes);
3. ``peers/`` (the normalizer-free peers, built on the structure);
4. ``init/`` (gains, schemes, explain: dispatches to the peers for theirs);
5. ``models/`` and ``diagnostics/`` (each built on the layers above);
6. the package itself (``wninit/__init__.py``, the public API, re-exports all of the library).

The suite, on top of the library: 7. ``suite/`` itself (atomic files); 8. ``suite/data/``; 9. ``suite/train/``
(one run) and ``suite/rl/`` (one RL run, which ``fit`` hands a task-"rl" config to); 10. ``suite/sweep/`` (many runs through train); 11. ``suite/report/`` (reads the store); 12. ``suite/bench/`` (the
speed benchmarks, on the library and the suite); 13. ``suite/cli/`` and ``wninit/__main__.py`` (the command line, on
top of everything).
"""
import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "wninit"

LAYERS = (
    ("errors",), ("weightnorm",), ("structure",), ("peers",), ("init",), ("models", "diagnostics"), ("__init__",),
    ("suite",), ("data",), ("train", "rl"), ("sweep",), ("report",), ("bench",), ("cli", "__main__"),
)
RANK = {unit: rank for rank, units in enumerate(LAYERS) for unit in units}

# What the core must never load: the experiment suite's extras and the heavy libraries they bring.
HEAVY = ("matplotlib", "rich", "ray", "pandas", "mlxtend", "submitit", "scipy", "sklearn")


def unit_of(module: str, package: Path) -> str:
    """The layer unit of a dotted module name inside the package: the library's sub-package or top module
    (``wninit.init.gains`` -> "init", ``wninit.errors`` -> "errors"), the suite's sub-package
    (``wninit.suite.train.fit`` -> "train"; "suite" for a module at the suite's top), "__init__" for the package."""
    parts = module.split(".")[1:]
    if not parts:
        return "__init__"
    if parts[0] == "suite" and len(parts) > 1 and (package / "suite" / parts[1]).is_dir():
        return parts[1]
    return parts[0]


def _module_name(path: Path, package: Path) -> str:
    rel = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(rel[:-1] if rel[-1] == "__init__" else rel)


def imported_modules(path: Path, package: Path) -> list[tuple[int, str]]:
    """(line, dotted name) of every import of the package's own modules in ``path``, anywhere in the file.

    ``from .. import x`` names the sub-module ``x`` when there is one, else the package it is taken from."""
    name = _module_name(path, package)
    here = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = here[:len(here) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            for alias in node.names:
                sub = Path(package.parent, *module.split("."), alias.name)
                found.append((node.lineno, f"{module}.{alias.name}" if sub.is_dir() or sub.with_suffix(".py").is_file()
                              else module))
    return [(line, m) for line, m in found if m.split(".")[0] == package.name]


def all_imports(package: Path) -> list[tuple[Path, int, str]]:
    """(file, line, dotted name) of every import of the package's own modules, file by file."""
    return [(path, line, module) for path in sorted(package.rglob("*.py"))
            for line, module in imported_modules(path, package)]


def upward_imports(package: Path, imports=None) -> list[str]:
    """Every import of a higher layer by a lower one, as "file:line: unit (layer) imports module (layer)"."""
    bad = []
    for path, line, module in all_imports(package) if imports is None else imports:
        source, target = unit_of(_module_name(path, package), package), unit_of(module, package)
        if RANK[target] > RANK[source]:
            bad.append(f"{path.relative_to(package.parent)}:{line}: {source} (layer {RANK[source]}) imports "
                       f"{module} (layer {RANK[target]})")
    return bad


def test_every_unit_of_the_package_has_a_layer():
    units = {unit_of(_module_name(p, PACKAGE), PACKAGE) for p in PACKAGE.rglob("*.py")}
    assert units == set(RANK), units ^ set(RANK)


def test_no_module_imports_a_higher_layer():
    imports = all_imports(PACKAGE)
    # the scan sees the package's imports (about 500 today) and the layers they join
    pairs = {(unit_of(_module_name(p, PACKAGE), PACKAGE), unit_of(m, PACKAGE)) for p, _, m in imports}
    assert len(imports) > 300 and {("report", "sweep"), ("cli", "report"), ("train", "data"), ("init", "peers"),
                                   ("structure", "weightnorm")} <= pairs
    bad = upward_imports(PACKAGE, imports)
    assert not bad, "imports of a higher layer:\n" + "\n".join(bad)


def test_import_wninit_loads_none_of_the_heavy_libraries():
    code = ("import sys, wninit\n"
            f"print(sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY)!r}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(PACKAGE.parent)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]", f"import wninit loaded {done.stdout.strip()}"


def test_the_subpackages_are_reached_lazily_after_import_wninit_and_the_suite_never():
    """``import wninit; wninit.peers.apply(...)`` (the README's line) works; the subpackages it does not touch,
    the suite and the plotting stay unloaded."""
    code = ("import sys, torch, wninit\n"
            "loaded = lambda: {m for m in sys.modules if m.startswith('wninit.')}\n"
            "before = 'wninit.peers' in loaded()\n"
            "wninit.peers.apply(wninit.models.ResNet(8, 10, norm='none'), 'nf', alpha=0.2)\n"
            "print(before, 'wninit.peers' in loaded(), sorted(m for m in loaded() if m.startswith('wninit.suite')),"
            f" sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY)!r}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(PACKAGE.parent)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().split(None, 2) == ["False", "True", "[] []"], done.stdout


def test_the_top_level_holds_about_fifteen_names_and_each_resolves():
    import wninit

    functions = [n for n in wninit.__all__ if n != "__version__" and n not in wninit.SUBPACKAGES]
    assert 12 <= len(functions) <= 18, functions
    assert {"initialize", "explain", "weight_norm", "remove_weight_norm", "switch_api", "convert_state_dict",
            "set_role", "register_activation", "wn_g", "wn_v"} <= set(functions)
    for name in wninit.__all__:
        assert getattr(wninit, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'layer_kind'"):
        wninit.layer_kind  # an internal: reached as wninit.weightnorm.layer_kind


def test_the_scan_finds_an_upward_import_inside_a_function(tmp_path):
    """The check is real: a relative import of a higher layer, inside a function, in a library module, a suite
    module and a sub-package's __init__, is reported; imports downwards are not."""
    pkg = tmp_path / "wninit"
    for sub in ("init", "models", "suite", "suite/train", "suite/sweep", "suite/report", "suite/cli"):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("from . import models\nfrom .init.gains import x\n")
    (pkg / "init" / "gains.py").write_text("x = 1\n\ndef f():\n    from ..suite.sweep import store\n"
                                           "    from .. import models\n    from .. import initialize\n")
    (pkg / "suite" / "sweep" / "store.py").write_text("from ..train import fit\nfrom ...init import gains\n")
    (pkg / "suite" / "train" / "fit.py").write_text("import wninit.models\n\ndef g():\n    from ..report.tables import t\n")
    (pkg / "suite" / "train" / "__init__.py").write_text("def h():\n    from .. import cli\n")
    (pkg / "suite" / "report" / "tables.py").write_text("from wninit.suite.sweep.store import s\nfrom ...init import x\n")
    assert upward_imports(pkg) == [
        "wninit/init/gains.py:4: init (layer 4) imports wninit.suite.sweep.store (layer 10)",
        "wninit/init/gains.py:5: init (layer 4) imports wninit.models (layer 5)",
        "wninit/init/gains.py:6: init (layer 4) imports wninit (layer 6)",
        "wninit/suite/train/__init__.py:2: train (layer 9) imports wninit.suite.cli (layer 13)",
        "wninit/suite/train/fit.py:4: train (layer 9) imports wninit.suite.report.tables (layer 11)",
    ]
