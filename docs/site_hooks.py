"""mkdocs hooks: the API reference, generated from ``wninit.__all__`` (and the ``__all__`` of each public module
in it) so that every public function and class has an entry, and a build error for one without a docstring."""
from __future__ import annotations

import inspect
from pathlib import Path

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File

API = "api"
DOCS = "docs"
# docs/*.md of the repository shown on the site as they are, under docs/ (their links between each other hold)
DOC_PAGES = {"method.md": "The method", "claims.md": "The paper's claims, judged", "results.md": "Diagnostics and CPU results",
             "peers.md": "Normalizer-free peers", "lifecycle.md": "Weight norm through a model's life",
             "performance.md": "Performance", "reliability.md": "Reliability", "layout.md": "The code's layout"}
# NOTE: classes that have no docstring of their own yet; each is listed, and the build fails once it has one
# (so that the list only shrinks). Their entries show the signature.
UNDOCUMENTED: set[str] = set()


def public_api() -> dict[str, list[tuple[str, object]]]:
    """Page -> its entries ``(public name, object)``: "wninit" for the top-level functions and classes, then
    one page per public package with the functions and classes of its ``__all__`` not on the top page."""
    import wninit

    def entries(module, prefix):
        return [(f"{prefix}.{n}", getattr(module, n)) for n in getattr(module, "__all__", [])
                if inspect.isclass(getattr(module, n)) or inspect.isroutine(getattr(module, n))]

    pages = {"wninit": entries(wninit, "wninit")}
    shown = {id(obj) for _, obj in pages["wninit"]}  # one entry per object: the top page's are not repeated
    for name in wninit.__all__:
        if inspect.ismodule(getattr(wninit, name)):
            pages[f"wninit.{name}"] = [(n, obj) for n, obj in entries(getattr(wninit, name), f"wninit.{name}")
                                       if id(obj) not in shown]
    return pages


def defined_at(obj) -> str:
    """Where ``obj`` is defined (``wninit.diagnostics.norm_propagation.propagation``): unambiguous for mkdocstrings
    when a package re-exports a name that is also one of its submodules."""
    return f"{obj.__module__}.{obj.__qualname__}"


def _check_docstrings(pages) -> None:
    names = {name: obj for entries in pages.values() for name, obj in entries}
    missing = sorted(n for n, obj in names.items() if not (obj.__doc__ or "").strip() and n not in UNDOCUMENTED)
    if missing:
        raise PluginError(f"public names without a docstring (each needs one for its API entry): {', '.join(missing)}")
    stale = sorted(n for n in UNDOCUMENTED if n in names and (names[n].__doc__ or "").strip())
    if stale:
        raise PluginError(f"{', '.join(stale)} now has a docstring: remove it from UNDOCUMENTED in docs/site_hooks.py")


def _page(title: str, entries) -> str:
    body = [f"# {title}", f"::: {title}\n    options:\n      members: false\n      show_root_heading: false"]
    body += [f"::: {defined_at(obj)}" + ("\n    options:\n      show_if_no_docstring: true" if name in UNDOCUMENTED else "")
             for name, obj in entries]
    return "\n\n".join(body) + "\n"


def _path(title: str) -> str:
    return f"{API}/{title.removeprefix('wninit').lstrip('.') or 'index'}.md"


def on_config(config, **kwargs):
    pages = public_api()
    _check_docstrings(pages)
    config.nav.append({"The method and the results": [{title: f"{DOCS}/{name}"} for name, title in DOC_PAGES.items()]})
    config.nav.append({"API reference": [{title: _path(title)} for title in pages]})
    return config


def on_files(files, config, **kwargs):
    for title, entries in public_api().items():
        files.append(File.generated(config, _path(title), content=_page(title, entries)))
    root = Path(__file__).parent  # docs/, beside this hook
    for name in DOC_PAGES:  # the repository's own documents, as they are (claims.md is written by reproduce)
        text = (root / name).read_text().replace("] [", "] \\[")  # "[0.9, 1.0] [fails]" is not a reference link
        files.append(File.generated(config, f"{DOCS}/{name}", content=text))
    for image in sorted(root.glob("*.png")):
        files.append(File.generated(config, f"{DOCS}/{image.name}", content=image.read_bytes()))
    return files
