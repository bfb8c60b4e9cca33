"""Each vocabulary and formula is defined once, by the module that owns it; everyone else imports that object.

Identity checks (``is``) fail as soon as a module restates a list instead of importing it; the AST scan of src/
fails when a literal copy of a vocabulary, or a second atomic rename, appears anywhere outside its owner.
"""
from __future__ import annotations

import argparse
import ast
import dataclasses
import re
from pathlib import Path

import pytest

import wninit
from wninit import models
from wninit.suite import data
from wninit.init import gains as init
from wninit.init import schemes as schemes_module
from wninit.suite.report import peers, tables
from wninit.suite.train import accel, config, result, schedules
from wninit.suite.train.config import RunConfig

SRC = Path(wninit.__file__).resolve().parent


def test_every_run_config_choice_list_is_its_owners_object():
    choices = config._CHOICES
    assert choices["arch"] is config.ARCHS is models.ARCHS
    assert choices["norm"] is config.NORMS is models.NORMS is models.layers.NORMS
    assert choices["dataset"] is data.DATASETS is data.sources.DATASETS
    assert choices["precision"] is accel.PRECISIONS
    assert choices["task"] is config.TASKS and choices["device"] is config.DEVICES
    assert config.SCHEDULES is schedules.SCHEDULES
    assert config.AUGMENTED_DATASETS is data.AUGMENTED_DATASETS
    assert config.DIRECTION_ALIASES is init.DIRECTION_ALIASES
    assert config.DEPTH_EXTRA is models.DEPTH_EXTRA is models.resnet.DEPTH_EXTRA
    assert config.model_stem_gamma is models.model_stem_gamma
    assert tables.EXECUTION_FIELDS is config.EXECUTION_FIELDS and peers.EXECUTION_FIELDS is config.EXECUTION_FIELDS


def _choices(parser: argparse.ArgumentParser, command: str, option: str):
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    return next(a for a in sub._actions if option in a.option_strings).choices


def test_cli_choices_are_the_owners_objects():
    from wninit.suite.cli import build_parser

    parser = build_parser()
    for command in ("diagnose", "hessian"):
        assert _choices(parser, command, "--arch") is models.ARCHS
        assert _choices(parser, command, "--direction") is init.DIRECTIONS
    assert _choices(parser, "explain", "--direction") is init.DIRECTIONS
    assert _choices(parser, "diagnose", "--norm") is models.NORMS
    assert _choices(parser, "sweep", "--device") is config.DEVICES
    assert _choices(parser, "rerun", "--device") is config.DEVICES


@pytest.mark.parametrize("arch", ["resnet", "wrn"])
def test_run_config_depth_rule_is_the_models(arch):
    # RunConfig accepts a depth exactly when the model can be built with it: one rule, models.blocks_per_stage
    for depth in range(1, 45):
        try:
            models.build_model(arch, in_shape=(3, 8, 8), num_classes=2, depth=depth, width=2)
            builds = True
        except ValueError:
            builds = False
        try:
            RunConfig(arch=arch, depth=depth)
            valid = True
        except wninit.errors.UserError:
            valid = False
        assert valid == builds, (arch, depth)


@pytest.mark.parametrize("arch,depth", [("resnet", 8), ("wrn", 10)])
def test_run_config_stem_gamma_is_the_one_the_model_declares(arch, depth):
    model = models.build_model(arch, in_shape=(3, 8, 8), num_classes=2, depth=depth, width=2)
    declared = wninit.init.role_gamma(wninit.get_role(model.stem), "proposed")
    assert RunConfig(arch=arch, depth=depth).resolved().stem_gamma == declared == models.model_stem_gamma(arch)


def test_each_scheme_is_one_registry_entry_read_by_the_report_the_plots_and_the_cli():
    from wninit.init import schemes
    from wninit.suite.cli import build_parser
    from wninit.suite.report import plots, reference

    assert schemes.SCHEMES == tuple(schemes.REGISTRY) and set(schemes.WN_SCHEMES) | set(schemes.PLAIN_SCHEMES) == \
        set(schemes.SCHEMES)
    assert not hasattr(schemes, "SCHEME_COLOURS") and not hasattr(reference, "_SCHEME_NAMES")
    for name, scheme in schemes.REGISTRY.items():  # the label and the colours come from the entry
        assert reference.scheme_label(name).startswith(scheme.label)
        assert plots.scheme_style((name, "orthogonal"))["color"] == scheme.colours[0]
    assert set(_choices(build_parser(), "explain", "--scheme")) <= set(schemes.DATA_FREE_SCHEMES)


def test_the_run_statuses_are_one_vocabulary():
    from wninit.suite import sweep
    from wninit.suite.sweep import leases, store

    assert store.STATUSES is sweep.STATUSES is result.STATUSES and set(result.FAILED.split()) < set(result.STATUSES)
    assert store.FINISHED is sweep.FINISHED is leases.FINISHED is result.FINISHED
    assert set(result.WAITING) | set(result.FINISHED) | {result.FAILED} == set(result.STATUSES)
    assert not hasattr(tables, "NOT_RUN")  # "not run" is a claim's verdict (report/verdicts.py), not a status


def test_report_groups_by_the_run_configs_execution_fields():
    class Run:
        def __init__(self, **changes):
            self.config = RunConfig(**changes).to_dict()

    # every execution field changed at once: no cell splits on where or how fast a run executed
    runs = [Run(), Run(device="auto", threads=2, data_root="/tmp", download=True, channels_last=True, compile=True)]
    assert tables._varying(runs) == set()
    assert tables._hparam_key(runs[0], ()) == tables._hparam_key(runs[1], ())
    assert peers._config_key(runs[0]) == peers._config_key(runs[1])


# -- the AST scan of src/ ---------------------------------------------------------------------------------------
# A string vocabulary and the one file allowed to spell it out.
OWNERS = {
    "models/__init__.py": {"ARCHS": models.ARCHS}, "models/layers.py": {"NORMS": models.NORMS},
    "suite/data/sources.py": {"DATASETS": data.DATASETS}, "suite/train/accel.py": {"PRECISIONS": accel.PRECISIONS},
    "init/gains.py": {"DIRECTIONS": init.DIRECTIONS}, "init/schemes.py": {"SCHEMES": schemes_module.SCHEMES},
    "suite/train/config.py": {"TASKS": config.TASKS, "DEVICES": config.DEVICES,
                              "EXECUTION_FIELDS": config.EXECUTION_FIELDS},
    "suite/train/result.py": {"STATUSES": result.STATUSES, "FINISHED": result.FINISHED, "WAITING": result.WAITING,
                              "CSV_COLUMNS": result.CSV_COLUMNS},
}
STRING_VOCABULARIES = {name: (vocabulary, owner) for owner, names in OWNERS.items()
                       for name, vocabulary in names.items()}
REGISTRIES = {"SCHEMES"}
# Calls that move a file into place: only the atomic-write module makes them.
RENAMES = {("os", "replace"), ("os", "rename"), ("shutil", "move"), ("tempfile", "mkstemp"),
           ("tempfile", "NamedTemporaryFile")}
ATOMIC_MODULE = "suite/_files.py"


def _sources():
    for path in sorted(SRC.rglob("*.py")):
        yield path.relative_to(SRC).as_posix(), ast.parse(path.read_text(), str(path))


def _constants(nodes) -> list:
    return [n.value for n in nodes if isinstance(n, ast.Constant)]


def _holds(items: set, vocabulary) -> bool:
    # a superset is a copy too (a list of the datasets plus one); two-name lists only when equal, since e.g. the
    # CLI's command names include the task names "train" and "hessian"
    return items >= set(vocabulary) if len(vocabulary) > 2 else items == set(vocabulary)


def _literal_copies(tree) -> list[tuple[str, int]]:
    """(vocabulary, line) of every literal tuple/list/set holding a whole vocabulary, and of every dict literal
    restating the direction aliases or the depth rule."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            if set(_constants([k for k in node.keys if k is not None])) >= set(init.DIRECTION_ALIASES):
                found.append(("DIRECTION_ALIASES", node.lineno))
            if dict(zip(_constants(node.keys), _constants(node.values))) == models.DEPTH_EXTRA:
                found.append(("DEPTH_EXTRA", node.lineno))
            if _schedules(_constants(node.keys)):
                found.append(("SCHEDULES", node.lineno))
        if not isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            continue
        items = set(_constants(node.elts))
        found += [(name, node.lineno) for name, (vocabulary, _) in STRING_VOCABULARIES.items() if _holds(items, vocabulary)]
        if _schedules(items):
            found.append(("SCHEDULES", node.lineno))
    return found


def _schedules(items) -> bool:
    return set(items) >= set(schedules.SCHEDULES) and all(type(i) is int for i in items)


def test_no_literal_copy_of_a_vocabulary_outside_its_owner():
    owners = {name: owner for name, (_, owner) in STRING_VOCABULARIES.items()}
    owners.update(DEPTH_EXTRA="models/resnet.py", DIRECTION_ALIASES="init/gains.py", SCHEDULES="suite/train/schedules.py")
    copies = [f"{where}:{line} spells out {name} (owned by {owners[name]})" for where, tree in _sources()
              for name, line in _literal_copies(tree) if where != owners[name]]
    assert not copies, "import the owner's object instead:\n" + "\n".join(copies)
    # each owner spells its vocabulary exactly once
    for name, owner in owners.items():
        if name in REGISTRIES:  # built from its registry's entries, not spelled as a list
            continue
        tree = ast.parse((SRC / owner).read_text())
        assert [n for n, _ in _literal_copies(tree)].count(name) == 1, (name, owner)


def test_only_the_atomic_write_module_renames_files():
    moves = []
    for where, tree in _sources():
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and \
                    (node.value.id, node.attr) in RENAMES and where != ATOMIC_MODULE:
                moves.append(f"{where}:{node.lineno} {node.value.id}.{node.attr}")
            if isinstance(node, ast.ImportFrom) and node.module in ("os", "shutil", "tempfile") and \
                    any((node.module, a.name) in RENAMES for a in node.names):
                moves.append(f"{where}:{node.lineno} from {node.module} import ...")
    assert not moves, "write through wninit.suite._files (atomic_path / atomic_write_bytes):\n" + "\n".join(moves)
    assert any(isinstance(n, ast.Attribute) and n.attr == "replace"
               for n in ast.walk(ast.parse((SRC / ATOMIC_MODULE).read_text())))


# -- the experiment registry: names, titles, kinds and claims come from the specs' [experiment] tables ---------------
def test_each_experiment_is_one_registry_entry_read_from_its_spec():
    from wninit.suite import experiments
    from wninit.suite.cli import reproduce
    from wninit.suite.report import claim_book, reference, sections

    registry = experiments.registry()
    assert [p.stem for p in sorted(experiments.PACKAGE_SPECS.glob("*.toml"))] == list(registry)
    assert {e.kind for e in registry.values()} <= set(experiments.KINDS)
    # each claim a store judges is listed by one spec, and the claim book reads it there
    listed = [n for e in registry.values() for n in e.claims]
    assert len(listed) == len(set(listed)) and set(listed) <= {c.number for c in claim_book.CLAIMS}
    for claim in claim_book.CLAIMS:
        assert claim.experiment == next((e.name for e in registry.values() if claim.number in e.claims), None)
    assert {c.number for c in claim_book.CLAIMS if c.experiment is None} == {1, 2, 3, 4}  # Figure 1, the gain
    # the paper's numbers are attached to registered experiments (or Figure 1), and carry no title of their own
    assert set(reference.REFERENCES) - {"figure1"} <= set(registry)
    assert "title" not in {f.name for f in dataclasses.fields(reference.Reference)}
    # what reproduce runs is each spec's `reproduce` list, not a list of names in the CLI
    assert not {"DEFAULT_SPECS", "MEDIUM_SPECS"} & set(vars(reproduce)) and not hasattr(tables, "EXPERIMENT_KINDS")
    assert not hasattr(sections, "_TITLES")
    for profile in reproduce.PROFILES:
        assert experiments.reproduced_at(profile) and all(
            profile in registry[name].profiles for name in experiments.reproduced_at(profile))


def _docstrings(tree) -> set[int]:
    return {id(node.body[0].value) for node in ast.walk(tree)
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body
            and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}


# The one module allowed to spell an experiment's name: the paper's numbers, keyed by the experiment they belong to.
REFERENCE_MODULE = "suite/report/reference.py"


def _experiment_restatements(where: str, tree, registry) -> list[str]:
    """Every string (not a docstring) of `tree` that spells a registered experiment's name (as a word) or its title
    (whole, or the part after its colon); reference.py may name an experiment only as a Reference's key."""
    keys = {id(node.args[0]) for node in ast.walk(tree) if where == REFERENCE_MODULE and isinstance(node, ast.Call)
            and getattr(node.func, "id", None) == "Reference" and node.args}
    skip = _docstrings(tree) | keys
    names = re.compile(r"\b(" + "|".join(map(re.escape, registry)) + r")\b")
    titles = {t for e in registry.values() for t in (e.title, e.title.split(": ", 1)[-1])}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            hits = names.findall(node.value) + [t for t in titles if t in node.value]
            found += [f"{where}:{node.lineno} spells {hit!r}" for hit in hits]
    return found


def test_no_module_spells_an_experiments_name_or_title():
    from wninit.suite.experiments import registry

    found = [line for where, tree in _sources() for line in _experiment_restatements(where, tree, registry())]
    assert not found, "read the experiment registry (wninit.suite.experiments) instead:\n" + "\n".join(found)


def test_the_restatement_scan_fails_on_a_reintroduced_title_or_name():
    from wninit.suite.experiments import registry

    reg = registry()
    some = next(iter(reg.values()))
    for source in (f"TITLES = {{{some.name!r}: 'x'}}", f"plot(title={some.title!r})",
                   f"SPECS = ('{some.name}',)", f"msg = f'run experiments/{some.name}.toml'"):
        assert _experiment_restatements("suite/report/x.py", ast.parse(source), reg), source
    assert not _experiment_restatements("suite/report/x.py", ast.parse(f'"""{some.name}"""'), reg)  # a docstring
