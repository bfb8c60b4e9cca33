"""docs/method.md is what the code cites: every `§N.M` written anywhere in src/, tests/ and benchmarks/ is a
heading of it, and no heading number appears twice (a citation must point to one place)."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
METHOD = ROOT / "docs" / "method.md"

CITATION = re.compile(r"§\s?(\d+(?:\.\d+)*)")  # "§3.5", "§ 6.1", "§3.5a" -> "3.5", "§7.2-§7.4" -> both
HEADING = re.compile(r"^#{1,6}\s+§(\d+(?:\.\d+)*)(?![\d.]*\d)")
FENCE = re.compile(r"^\s*(```|~~~)")
SKIPPED_DIRS = ("__pycache__",)  # and build outputs: *.egg-info
# This file's own examples of citations that resolve nowhere (the check's test below): the one file not checked.
OWN_EXAMPLES = str(Path("tests", Path(__file__).name))


def heading_numbers(markdown: str) -> list[str]:
    """Section numbers of the markdown's headings (`### §3.5 Title` -> "3.5"), in order, outside code fences."""
    numbers, fenced = [], False
    for line in markdown.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        m = None if fenced else HEADING.match(line)
        if m:
            numbers.append(m.group(1))
    return numbers


def citations(root: Path) -> list[tuple[str, int, str]]:
    """(file relative to root's parent, line, section) of every `§` citation in the text files under root."""
    found = []
    for path in sorted(root.rglob("*")):
        parts = path.relative_to(root).parts
        if not path.is_file() or any(p in SKIPPED_DIRS or p.endswith(".egg-info") for p in parts):
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:  # binary files cite nothing
            continue
        for lineno, line in enumerate(text.splitlines(), 1):
            for m in CITATION.finditer(line):
                found.append((str(path.relative_to(root.parent)), lineno, m.group(1)))
    return found


def unresolved(root: Path, markdown: str) -> list[tuple[str, int, str]]:
    """The citations under root that name no heading of the markdown."""
    sections = set(heading_numbers(markdown))
    return [c for c in citations(root) if c[2] not in sections]


@pytest.mark.parametrize("folder, least", [("src", 100), ("tests", 40), ("benchmarks", 2)])
def test_every_citation_resolves_to_a_heading(folder, least):
    cited = citations(ROOT / folder)
    assert len(cited) > least  # the scan sees the folder's citations (today src about 280, tests 75, benchmarks 3)
    missing = [c for c in unresolved(ROOT / folder, METHOD.read_text(encoding="utf-8")) if c[0] != OWN_EXAMPLES]
    assert not missing, "citations with no heading in docs/method.md:\n" + "\n".join(
        f"{f}:{line}: §{n}" for f, line, n in missing)


def test_no_heading_is_numbered_twice():
    numbers = heading_numbers(METHOD.read_text(encoding="utf-8"))
    twice = sorted({n for n in numbers if numbers.count(n) > 1})
    assert not twice, f"headings numbered more than once in docs/method.md: {twice}"


def test_headings_are_numbered_in_order_under_their_parents():
    numbers = heading_numbers(METHOD.read_text(encoding="utf-8"))
    keys = [tuple(map(int, n.split("."))) for n in numbers]
    assert keys == sorted(keys), "docs/method.md's sections are out of order"
    orphans = [n for n in numbers if "." in n and n.rsplit(".", 1)[0] not in numbers]
    assert not orphans, f"subsections without their parent section: {orphans}"


def test_sections_the_lead_fills_exist():
    numbers = heading_numbers(METHOD.read_text(encoding="utf-8"))
    assert {"3.7", "3.8"} <= set(numbers)


def test_the_check_reports_a_citation_of_a_missing_section(tmp_path):
    src = tmp_path / "src"
    (src / "pkg" / "__pycache__").mkdir(parents=True)
    (src / "pkg" / "mod.py").write_text('"""See docs/method.md §3.5a and §7.2-§7.4."""\nx = 1  # §99.1\n',
                                        encoding="utf-8")
    (src / "pkg" / "__pycache__" / "mod.pyc").write_bytes(b"\x00\xff \xc2\xa7 12")  # skipped: a build output
    (src / "pkg" / "data.bin").write_bytes(b"\xff\xfe\x00")  # skipped: not text
    markdown = "# Title\n\n## §3 Theory\n### §3.5 Proposed\n```\n### §99.1 inside a code fence\n```\n" \
               "## §7 Experiments\n### §7.2 Fig. 2\n### §7.4 Fig. 3\n### §7.40 not 7.4\n"
    assert heading_numbers(markdown) == ["3", "3.5", "7", "7.2", "7.4", "7.40"]
    assert [c[2] for c in citations(src)] == ["3.5", "7.2", "7.4", "99.1"]
    assert unresolved(src, markdown) == [(str(Path("src/pkg/mod.py")), 2, "99.1")]
    assert unresolved(src, markdown + "### §99.1 Added\n") == []
