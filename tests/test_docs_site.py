"""The documentation site: `mkdocs build --strict` passes, every public function and class of wninit has an
entry in the API reference, a broken link or a missing docstring fails the build, and every Python block of
the hand-written pages runs as written."""
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import wninit

ROOT = Path(__file__).resolve().parents[1]
PAGES = ROOT / "docs" / "site"


def _hooks():
    spec = importlib.util.spec_from_file_location("site_hooks", ROOT / "docs" / "site_hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _build(config: Path, site: Path):
    src = str(Path(wninit.__file__).parents[1])
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1", PYTHONPATH=os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "-d", str(site)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_site_builds_strict_with_an_entry_for_every_public_name(tmp_path):
    done = _build(ROOT / "mkdocs.yml", tmp_path / "site")
    assert done.returncode == 0, done.stderr[-3000:]
    hooks = _hooks()
    pages = hooks.public_api()
    assert {n for n in wninit.__all__ if callable(getattr(wninit, n))} <= {n.split(".")[-1] for n, _ in pages["wninit"]}
    for title, entries in pages.items():
        md = Path(hooks._path(title))  # api/index.md -> api/index.html, api/models.md -> api/models/index.html
        page = tmp_path / "site" / (md.with_suffix(".html") if md.stem == "index" else md.with_suffix("") / "index.html")
        html = page.read_text()
        for name, obj in entries:
            assert f'id="{hooks.defined_at(obj)}"' in html, f"{name} has no entry on {page}"


def test_a_broken_link_fails_the_build(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    for page in PAGES.glob("*.md"):
        (docs / page.name).write_text(page.read_text())
    (docs / "index.md").write_text((PAGES / "index.md").read_text() + "\nSee [the missing page](nowhere.md).\n")
    config = tmp_path / "mkdocs.yml"
    config.write_text(f"INHERIT: {ROOT / 'mkdocs.yml'}\ndocs_dir: {docs}\nhooks: [{ROOT / 'docs' / 'site_hooks.py'}]\n")
    done = _build(config, tmp_path / "site")
    assert done.returncode != 0 and "nowhere.md" in done.stderr


def test_a_public_name_without_a_docstring_fails_the_build():
    hooks = _hooks()

    def undocumented():
        pass

    with pytest.raises(Exception, match="wninit.undocumented"):
        hooks._check_docstrings({"wninit": [("wninit.undocumented", undocumented)]})


@pytest.mark.parametrize("page", ["index.md", "your-model.md", "diagnostics.md"])
def test_python_blocks_of_the_page_run_as_written(page, tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", (PAGES / page).read_text(), flags=re.S)
    assert blocks
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": f"docs_{page}"}
    state = torch.random.get_rng_state()
    try:
        for block in blocks:  # in order, in one namespace, as a reader pastes them
            exec(compile(block, f"{page}", "exec"), namespace)
    finally:
        torch.random.set_rng_state(state)
