"""The documentation site: `mkdocs build --strict` passes, every public function and class of wninit has an
entry in the API reference, a broken link or a missing docstring fails the build, the built pages show no raw
reStructuredText and no untypeset math, and every Python block of the hand-written pages runs as written."""
import html
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
PAGES = ROOT / "docs"
# What a reader must never see on a built page: a reST role (:func:`x`), a reST directive (.. math::), math
# left as TeX (\\sqrt, $x$, the \\( \\) a typesetter script would need), a Markdown table or link left raw.
RAW_MARKUP = {
    "reST role": re.compile(r":(?:func|class|mod|meth|attr|data|obj|exc|ref|math|py:\w+):`?"),
    "reST directive": re.compile(r"^\s*\.\. [a-z-]+::", re.M),
    "double-backtick literal": re.compile(r"``"),
    "TeX": re.compile(r"\\(?:sqrt|frac|text|mathrm|mathbb|gamma|sum|lVert|left|right|cdot|qquad|leftarrow)\b|\$[^$\s]|\\[(\[]"),
}


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


def raw_markup(site: Path) -> list[str]:
    """Every piece of raw markup a reader would see on the built site: "page: kind: text around it". Code
    blocks are left out (they show code as written); inline code is not."""
    found = []
    for page in sorted(site.rglob("*.html")):
        text = re.sub(r"<pre\b.*?</pre>|<math\b.*?</math>|<script\b.*?</script>", " ", page.read_text(), flags=re.S)
        text = html.unescape(re.sub(r"<[^>]+>", "", text))
        for kind, pattern in RAW_MARKUP.items():
            found += [f"{page.relative_to(site)}: {kind}: {text[max(m.start() - 30, 0):m.end() + 30]!r}"
                      for m in pattern.finditer(text)]
    return found


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The site, built once for the tests that read it."""
    out = tmp_path_factory.mktemp("site") / "site"
    done = _build(ROOT / "mkdocs.yml", out)
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def test_site_builds_strict_with_an_entry_for_every_public_name(site):
    hooks = _hooks()
    pages = hooks.public_api()
    ids = {hooks.defined_at(obj) for entries in pages.values() for _, obj in entries}
    for name in wninit.__all__:  # every top-level function and class is documented on a group page
        obj = getattr(wninit, name)
        if callable(obj):
            assert hooks.defined_at(obj) in ids, f"wninit.{name} is on no API page"
    for page_name, entries in pages.items():
        page = site / "api" / Path(page_name).stem / "index.html"
        text = page.read_text()
        for name, obj in entries:
            assert f'id="{hooks.defined_at(obj)}"' in text, f"{name} has no entry on {page}"
            assert sum(f'id="{hooks.defined_at(obj)}"' in p.read_text() for p in (site / "api").rglob("*.html")) == 1, \
                f"{name} is documented on more than one page"


def test_the_built_site_shows_no_raw_markup(site):
    found = raw_markup(site)
    assert not found, f"{len(found)} pieces of raw markup, the first: " + "\n".join(found[:20])


def test_the_raw_markup_check_finds_rest_and_tex(tmp_path):
    page = tmp_path / "page.html"
    for raw in ["<p>see :func:<code>wninit.initialize</code></p>", "<p>.. math::\n   g = 1</p>",
                "<p>\\(g = \\sqrt{2}\\)</p>", "<p>the gain $g$ is</p>", "<p><code>``x``</code></p>"]:
        page.write_text(raw)
        assert raw_markup(tmp_path), raw
    page.write_text("<p>typeset: <math><msqrt><mn>2</mn></msqrt></math></p><pre>$ wninit --help</pre>")
    assert not raw_markup(tmp_path)


@pytest.mark.parametrize("page", ["index.md", "your-model.md", "diagnostics.md"] +
                         [f"api/{p.name}" for p in sorted((PAGES / "api").glob("*.md"))])
def test_code_blocks_fit_the_page_column(page):
    """A code line past 82 characters is cut off in the page's column (docs/screenshots/)."""
    blocks = re.findall(r"```\w*\n(.*?)```", (PAGES / page).read_text(), flags=re.S)
    wide = [line for block in blocks for line in block.splitlines() if len(line) > 82]
    assert not wide, wide


def test_method_references_link_to_their_section(site):
    method = (site / "method" / "index.html").read_text()
    anchors = set(re.findall(r'<span id="(s[\d-]+)">', method))
    assert {"s3-5", "s3-7", "s7-6"} <= anchors
    links = [(p, a) for p in site.rglob("*.html") for a in re.findall(r'href="[./]*method/#(s[\d-]+)"', p.read_text())]
    assert len(links) > 30, "docs/method.md §N references are links"
    assert not [f"{p}: #{a}" for p, a in links if a not in anchors]
    plain = [p for p in site.rglob("*.html")
             if re.search(r"docs/method\.md §\d", re.sub(r"<pre\b.*?</pre>|<a\b.*?</a>", "", p.read_text(), flags=re.S))]
    assert not plain, f"unlinked docs/method.md § references on {plain}"


def test_a_broken_link_fails_the_build(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    for page in PAGES.rglob("*.md"):
        (docs / page.relative_to(PAGES)).parent.mkdir(parents=True, exist_ok=True)
        (docs / page.relative_to(PAGES)).write_text(page.read_text())
    for image in PAGES.glob("*.png"):
        (docs / image.name).write_bytes(image.read_bytes())
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
        hooks._check_docstrings({"init.md": [("wninit.undocumented", undocumented)]})


@pytest.mark.parametrize("page", ["index.md", "your-model.md", "diagnostics.md"] +
                         [f"api/{p.name}" for p in sorted((PAGES / "api").glob("*.md")) if "```python" in p.read_text()])
def test_python_blocks_of_the_page_run_as_written(page, tmp_path, monkeypatch, capsys):
    """And a page's sample output (its ```text blocks) is what its code prints, number for number."""
    text = (PAGES / page).read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": f"docs_{page}"}
    state = torch.random.get_rng_state()
    try:
        for block in blocks:  # in order, in one namespace, as a reader pastes them
            exec(compile(block, f"{page}", "exec"), namespace)
    finally:
        torch.random.set_rng_state(state)
    printed = capsys.readouterr().out
    for sample in re.findall(r"```text\n(.*?)```", text, flags=re.S):
        assert sample.strip() in printed, f"{page}'s sample output is not what its code prints:\n{printed}"
