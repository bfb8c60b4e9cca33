"""Help text in plain words: a terminal shows no Markdown, so `--help` carries none."""
from __future__ import annotations

import re

__all__ = ["describe", "plain"]

_USAGE = re.compile(r"^`wninit .*?`\)?: ")  # "`wninit explain MODULE:FACTORY ...`: " opens a command's docstring
_LINK = re.compile(r"\[`?([^`\]]+)`?\]\[[^\]]*\]")  # [`name`][target] -> name


def plain(text: str) -> str:
    """`text` without Markdown: links become their words, code spans lose their backticks."""
    return _LINK.sub(r"\1", text).replace("`", "")


def describe(doc: str) -> str:
    """A subcommand's `--help` description from its module docstring: the first paragraph, less the usage line
    that argparse prints anyway, in plain text and starting with a capital."""
    text = _USAGE.sub("", " ".join(doc.split("\n\n")[0].split()))
    text = plain(text)
    return text[:1].upper() + text[1:]
