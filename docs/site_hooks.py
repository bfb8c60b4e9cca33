"""mkdocs hooks: the API reference generated from the ``__all__`` of each group's package, math typeset at build
time, ``docs/method.md §N`` references made links, and linked figures embedded.

The API pages are hand-written introductions (docs/api/<group>.md) to which this hook appends one entry per
name of the package's ``__all__``; a public function or class without a docstring fails the build."""
from __future__ import annotations

import html
import inspect
import re

from mkdocs.exceptions import PluginError

# The API reference, the way a user thinks: (page under docs/api/, the package whose __all__ it documents)
GROUPS = {
    "init.md": "wninit.init",
    "weightnorm.md": "wninit.weightnorm",
    "structure.md": "wninit.structure",
    "peers.md": "wninit.peers",
    "diagnostics.md": "wninit.diagnostics",
    "models.md": "wninit.models",
    "suite.md": "wninit.suite.train",
}
# NOTE: names that have no docstring of their own yet; each is listed, and the build fails once it has one
# (so that the list only shrinks). Their entries show the signature.
UNDOCUMENTED: set[str] = set()

SECTION_REF = re.compile(r"docs/method\.md §(\d+(?:\.\d+)*)")
SECTION_HEADING = re.compile(r'(<h[23] id="[^"]*">)(§(\d+(?:\.\d+)*) )')
MATH = re.compile(r'<(span|div) class="arithmatex">\\[(\[](.*?)\\[)\]]</\1>', re.S)
PRE = re.compile(r"<pre\b.*?</pre>", re.S)
PNG_LINK = re.compile(r"(?<!!)\[([^\]\n]+)\]\(([^)\s]+\.png)\)")


def _import(path: str):
    import importlib

    return importlib.import_module(path)


def public_api() -> dict[str, list[tuple[str, object]]]:
    """Page -> its entries ``(public name, object)``: the functions and classes of the group package's
    ``__all__``, each once (the first group that exports it documents it)."""
    pages, shown = {}, set()
    for page, package in GROUPS.items():
        module = _import(package)
        pages[page] = []
        for name in getattr(module, "__all__", []):
            obj = getattr(module, name)
            if (inspect.isclass(obj) or inspect.isroutine(obj)) and id(obj) not in shown:
                shown.add(id(obj))
                pages[page].append((f"{package}.{name}", obj))
    return pages


def defined_at(obj) -> str:
    """Where ``obj`` is defined (``wninit.diagnostics.norm_propagation.propagation``): its one identifier on the
    site, unambiguous when a package re-exports a name that is also one of its submodules."""
    return f"{obj.__module__}.{obj.__qualname__}"


def rendered() -> set[str]:
    """The identifiers the API pages render (cross-references may point at these), packages included."""
    return {defined_at(obj) for entries in public_api().values() for _, obj in entries} | set(GROUPS.values())


def _check_docstrings(pages) -> None:
    names = {name: obj for entries in pages.values() for name, obj in entries}
    missing = sorted(n for n, obj in names.items() if not (obj.__doc__ or "").strip() and n not in UNDOCUMENTED)
    if missing:
        raise PluginError(f"public names without a docstring (each needs one for its API entry): {', '.join(missing)}")
    stale = sorted(n for n in UNDOCUMENTED if n in names and (names[n].__doc__ or "").strip())
    if stale:
        raise PluginError(f"{', '.join(stale)} now has a docstring: remove it from UNDOCUMENTED in docs/site_hooks.py")


def _entries(page: str, entries) -> str:
    package = GROUPS[page]
    body = [f"## Reference\n\n::: {package}\n    options:\n      members: false\n      show_root_heading: false"]
    body += [f"::: {defined_at(obj)}" + ("\n    options:\n      show_if_no_docstring: true" if name in UNDOCUMENTED else "")
             for name, obj in entries]
    return "\n\n".join(body) + "\n"


def _top_level_table() -> str:
    """The names ``import wninit`` gives, each linked to its one entry on a group page."""
    import wninit

    rows = ["| `wninit.` name | what it is |", "| --- | --- |"]
    for name in wninit.__all__:
        obj = getattr(wninit, name)
        if inspect.ismodule(obj):
            target = obj.__name__ if obj.__name__ in GROUPS.values() else None
            summary = "package"
        elif inspect.isclass(obj) or inspect.isroutine(obj):
            target, summary = defined_at(obj), (obj.__doc__ or "").strip().split("\n")[0]
        else:
            continue
        label = f"[`{name}`][{target}]" if target else f"`{name}`"
        rows.append(f"| {label} | {summary.replace('|', '/')} |")
    return "\n".join(rows) + "\n"


def on_config(config, **kwargs):
    _check_docstrings(public_api())
    return config


def on_page_markdown(markdown, page, **kwargs):
    uri = page.file.src_uri
    if uri.startswith("api/"):
        name = uri.removeprefix("api/")
        if name in GROUPS:
            markdown += "\n\n" + _entries(name, public_api()[name])
        elif name == "index.md":
            markdown += "\n\n" + _top_level_table()
    markdown = markdown.replace("] [", "] \\[")  # "[0.9, 1.0] [fails]" is not a reference link
    # a linked figure is shown, not only linked (docs/method.md's PNGs, the claims' figures)
    return PNG_LINK.sub(r"![\1](\2)", markdown)


def _mathml(match) -> str:
    from latex2mathml.converter import convert

    latex = html.unescape(match.group(2)).strip()
    latex = re.sub(r"\\text\{([^}]*)\}", lambda m: "\\text{" + m.group(1).replace("\\_", "_") + "}", latex)
    return convert(latex, display="block" if match.group(1) == "div" else "inline")


def _section_links(text: str, page) -> str:
    """Every ``docs/method.md §N`` outside code blocks becomes a link to that section of the method page."""
    up = "../" * page.url.count("/")
    link = (lambda m: f'<a href="{up}method/#s{m.group(1).replace(".", "-")}">{m.group(0)}</a>')
    parts, last = [], 0
    for pre in PRE.finditer(text):
        parts += [SECTION_REF.sub(link, text[last:pre.start()]), pre.group(0)]
        last = pre.end()
    return "".join(parts + [SECTION_REF.sub(link, text[last:])])


def on_page_content(content, page, **kwargs):
    # math is typeset here, once, as MathML: the site needs no script and no network to show it
    content = MATH.sub(_mathml, content)
    if page.file.src_uri == "method.md":  # "§3.7 ..." headings get the stable anchor "s3-7" beside toc's own
        content = SECTION_HEADING.sub(lambda m: f'{m.group(1)}<span id="s{m.group(3).replace(".", "-")}"></span>{m.group(2)}',
                                      content)
    return _section_links(content, page)
