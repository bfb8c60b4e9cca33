"""The experiment registry: one `ExperimentInfo` per spec in `wninit/experiments/*.toml`, read from the spec's
`[experiment]` table, so that an experiment's name, title, kind and claims are written once, in its TOML.

The CLI (which specs `wninit reproduce` runs, where `wninit sweep NAME` finds a spec), the report (each
section's title and layout, the experiment each claim is judged on) and the plots read them here; no module
spells an experiment's name or title (`tests/test_vocabulary.py` checks it). The specs ship inside the package,
so an installed wheel has the same registry as a source checkout.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from wninit.errors import UserError

__all__ = ["ExperimentInfo", "KINDS", "PACKAGE_SPECS", "registry", "experiment", "info_of", "of_kind",
           "judged_on", "reproduced_at", "find_experiments", "toml_loads"]

# The figure or table an experiment makes, which picks its layout in the report (report/sections.py).
KINDS = ("depth",      # Fig. 2: test and train accuracy vs depth, best configuration per depth
         "layers",     # Fig. 3 (left): test accuracy after one epoch vs number of layers
         "hparams",    # Fig. 2 (right): accuracy per hyper-parameter configuration, sorted
         "survival",   # Fig. 3 (right): share of seeds reaching epoch 3 without diverging
         "wn_vs_bn",   # Table 1: test error of WN (+ warmup) vs BN
         "hessian",    # Table 2: log spectral norm of the Hessian at init
         "peers",      # beside the paper: the normalizer-free peers, accuracy vs depth
         "rl",         # the poster's RL curves: return vs environment steps
         "plateau")    # beyond the paper: plateau length of the WN CNN (a page of docs/results.md)

PACKAGE_SPECS = Path(__file__).resolve().parents[1] / "experiments"  # wninit/experiments/, in any installation


@dataclass(frozen=True)
class ExperimentInfo:
    """One experiment spec's identity: what the rest of the suite reads about it without expanding its runs."""
    name: str                      # the name its runs are filed under in a store (the file name by default)
    title: str                     # the paper's figure or table it reproduces: the report's heading and plot title
    kind: str                      # one of KINDS
    claims: tuple[int, ...]        # the claims of docs/method.md §9 judged on it
    profiles: tuple[str, ...]      # its profiles, in file order
    reproduce: tuple[str, ...]     # the profiles `wninit reproduce --profile P` runs it at
    path: Path


def toml_loads(text: str) -> dict:
    """A TOML document as a dict (`tomllib`, or `tomli` on Python 3.10)."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: the suite extra installs tomli
        import tomli as tomllib
    return tomllib.loads(text)


def _ints(value, key: str, path: Path) -> tuple[int, ...]:
    if not isinstance(value, list) or not all(type(v) is int for v in value):
        raise UserError(f"{key} of [experiment] in {path} must be a list of integers, got {value!r}")
    return tuple(value)


def _names(value, key: str, path: Path) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise UserError(f"{key} of [experiment] in {path} must be a list of strings, got {value!r}")
    return tuple(value)


def read_info(path: Path) -> ExperimentInfo:
    """The `[experiment]` table of the spec at `path`; a missing title or kind, or an unknown kind, is one sentence."""
    try:
        doc = toml_loads(path.read_text())
    except ValueError as exc:  # TOMLDecodeError, whichever module raised it
        raise UserError(f"{path} is not valid TOML ({str(exc).splitlines()[0]}); fix the file") from None
    meta = doc.get("experiment", {})
    for key in ("title", "kind"):
        if not isinstance(meta.get(key), str) or not meta[key]:
            raise UserError(f"[experiment] in {path} needs {key} = \"...\"")
    if meta["kind"] not in KINDS:
        raise UserError(f"kind {meta['kind']!r} of [experiment] in {path} is not one of {', '.join(KINDS)}")
    profiles = tuple(doc.get("profiles", {}))
    reproduce = _names(meta.get("reproduce", []), "reproduce", path)
    unknown = [p for p in reproduce if p not in profiles]
    if unknown:
        raise UserError(f"reproduce of [experiment] in {path} names {', '.join(unknown)}, not a profile of the spec")
    return ExperimentInfo(name=str(meta.get("name", path.stem)), title=meta["title"], kind=meta["kind"],
                          claims=_ints(meta.get("claims", []), "claims", path), profiles=profiles,
                          reproduce=reproduce, path=path)


@functools.cache
def registry(folder: Path = PACKAGE_SPECS) -> dict[str, ExperimentInfo]:
    """Name -> ExperimentInfo of every spec in `folder` (the package's specs by default), in file-name order.
    Two specs judging one claim is one sentence: each claim is judged on one experiment."""
    found: dict[str, ExperimentInfo] = {}
    judged: dict[int, str] = {}
    for path in sorted(Path(folder).glob("*.toml")):
        info = read_info(path)
        if info.name in found:
            raise UserError(f"{path} and {found[info.name].path} both name the experiment {info.name!r}")
        for number in info.claims:
            if number in judged:
                raise UserError(f"claim {number} is judged on both {judged[number]} and {info.name}; keep it in one "
                                "spec's claims")
            judged[number] = info.name
        found[info.name] = info
    return found


def experiment(name: str) -> ExperimentInfo:
    """The registered experiment `name`; an unknown name is one sentence listing the known ones."""
    known = registry()
    if name not in known:
        raise UserError(f"no experiment named {name!r}: choose among {', '.join(known)}")
    return known[name]


def info_of(name: str) -> ExperimentInfo | None:
    """The registered experiment `name`, or None for a store's experiment from a spec of the user's own."""
    return registry().get(name)


def of_kind(kind: str) -> ExperimentInfo:
    """The one experiment of `kind` (for the kinds only one experiment has, such as "plateau")."""
    found = [e for e in registry().values() if e.kind == kind]
    if len(found) != 1:
        raise UserError(f"{len(found)} experiments are of kind {kind!r}, expected one")
    return found[0]


def judged_on(claim: int) -> str | None:
    """The name of the experiment claim `claim` is judged on, or None for a claim judged without a store."""
    return next((e.name for e in registry().values() if claim in e.claims), None)


def reproduced_at(profile: str) -> tuple[str, ...]:
    """The experiments `wninit reproduce --profile PROFILE` runs, in registry order."""
    return tuple(e.name for e in registry().values() if profile in e.reproduce)


def find_experiments(explicit: str | None = None) -> Path:
    """The folder of experiment specs: `explicit`, ./experiments (a source checkout's, when it holds the
    registry's specs), or the specs installed with the package."""
    if explicit:
        if not Path(explicit).is_dir():
            raise UserError(f"cannot find the experiment specs in {explicit}: pass --experiments DIR, a folder of "
                            ".toml specs")
        return Path(explicit)
    local = Path.cwd() / "experiments"
    if all((local / info.path.name).is_file() for info in registry().values()) and local.is_dir():
        return local
    return PACKAGE_SPECS
