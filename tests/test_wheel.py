"""The built package, not the source tree: `python -m build` makes a wheel and an sdist that carry the version of
`wninit.__version__`, the experiment specs and `py.typed`; the wheel installs into a fresh virtual environment
(its torch and numpy from this one's site-packages) where `wninit --version`, `wninit reproduce --help` and a
one-run sweep work, importing wninit from the venv, and `wninit bench` finds its benchmarks (they ship with the package).

The venv reaches the running environment's torch and numpy through a `.pth` file naming the folders they are
imported from, never through `--system-site-packages`: the base interpreter has no torch when the tests run
in a user's virtual environment."""
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

import wninit
from tiny_specs import tiny_spec

ROOT = Path(__file__).resolve().parents[1]
SKIP = shutil.ignore_patterns(".git", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", ".hypothesis",
                              ".benchmarks", "runs", "wninit-out", "*.db", ".venv*", "site")
ONE_RUN = tiny_spec("one_run", """
    lr = 0.05
    scheme = "proposed"
    seed = 1
    [profiles.quick]
""")


def _run(cmd, **kw):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}  # no source tree
    done = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=env, timeout=300, **kw)
    assert done.returncode == 0, f"{cmd} exited {done.returncode}:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    return done.stdout


def _see_this_environments_packages(python):
    """Append the folders this process imports torch and numpy (and the suite's extras beside them) from to the
    venv's sys.path, after its own site-packages, so the wheel's wninit comes first. A path line in a `.pth` file
    adds the folder only: the `.pth` files inside it (this environment's editable wninit) are not run."""
    import numpy
    import torch

    purelib = _run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).strip()
    folders = dict.fromkeys(str(Path(m.__file__).resolve().parents[1]) for m in (torch, numpy))
    (Path(purelib) / "_wninit_test_env.pth").write_text("".join(f"{f}\n" for f in folders))


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    """wheel and sdist built from a copy of the checkout (the build leaves nothing in the tree)."""
    pytest.importorskip("build")  # the `test` extra
    tmp = tmp_path_factory.mktemp("build")
    src = tmp / "src"
    shutil.copytree(ROOT, src, ignore=SKIP, symlinks=True)
    # --no-isolation: the build backend (setuptools) of this environment, no download
    _run([sys.executable, "-m", "build", "--no-isolation", "--outdir", tmp / "dist", src])
    (wheel,) = (tmp / "dist").glob("wninit-*.whl")
    (sdist,) = (tmp / "dist").glob("wninit-*.tar.gz")
    return wheel, sdist


@pytest.mark.slow  # a build, a venv and an install: ~30 s
def test_wheel_and_sdist_carry_the_version_the_specs_and_py_typed(dist):
    wheel, sdist = dist
    assert wheel.name.startswith(f"wninit-{wninit.__version__}-") and sdist.name == f"wninit-{wninit.__version__}.tar.gz"
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"wninit/py.typed", "wninit/experiments/fig2_mlp_depth.toml", "wninit/suite/sweep/slurm.py",
            "wninit/suite/bench/wn.py", "wninit/suite/bench/common.py"} <= names
    with tarfile.open(sdist) as tar:
        assert f"wninit-{wninit.__version__}/src/wninit/py.typed" in tar.getnames()


@pytest.mark.slow
def test_wheel_installs_into_a_fresh_venv_and_runs_a_sweep(dist, tmp_path):
    wheel, _ = dist
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", venv])
    bin_dir = venv / ("Scripts" if os.name == "nt" else "bin")
    _see_this_environments_packages(bin_dir / "python")
    # --no-index: torch and numpy come from this environment's site-packages, nothing is downloaded;
    # --no-deps --force-reinstall: an editable wninit in those site-packages must not stand in for the wheel
    _run([bin_dir / "python", "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--force-reinstall", wheel])
    where = _run([bin_dir / "python", "-c", "import wninit; print(wninit.__file__)"], cwd=tmp_path)
    assert Path(where.strip()).is_relative_to(venv)  # the wheel's copy, not the source tree
    assert _run([bin_dir / "wninit", "--version"]).strip() == f"wninit {wninit.__version__}"
    assert "usage: wninit reproduce" in _run([bin_dir / "wninit", "reproduce", "--help"])
    (tmp_path / "one.toml").write_text(ONE_RUN)
    out = _run([bin_dir / "wninit", "sweep", "one.toml", "--store", "one.db", "--workers", "1", "--no-progress"],
               cwd=tmp_path)
    assert "1 runs: 1 completed" in out, out
    # the benchmarks ship with the package: listed, and each one loads (runs and tables), from the wheel's copy
    listed = _run([bin_dir / "wninit", "bench", "--list"], cwd=tmp_path)
    assert {"wn", "sweep", "ensemble"} <= {line.split()[0] for line in listed.splitlines()}, listed
    loaded = _run([bin_dir / "python", "-c", "import sys\nfrom wninit.suite.cli import bench\n"
                   "for name, module in bench.discover().items():\n"
                   "    m = bench._load(module)\n"
                   "    assert callable(m.run) and callable(m.table) and m.__file__.startswith(sys.prefix), name\n"
                   "print(len(bench.discover()))"], cwd=tmp_path)
    assert int(loaded) == len(listed.splitlines())
