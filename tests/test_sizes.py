"""Small modules with one job: no file of src/ over 400 lines, no function over 60 (a newcomer reads each whole)."""
import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "wninit"
MAX_FILE_LINES, MAX_FUNCTION_LINES = 400, 60


def _modules():
    return sorted(SRC.rglob("*.py"))


def test_no_file_of_src_is_over_400_lines():
    long = {str(p.relative_to(SRC)): n for p in _modules() if (n := p.read_text().count("\n")) > MAX_FILE_LINES}
    assert long == {}


def test_no_function_of_src_is_over_60_lines():
    long = {}
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long[f"{path.relative_to(SRC)}::{node.name}"] = lines
    assert long == {}


def test_the_scan_sees_the_package():
    assert len(_modules()) > 50 and (SRC / "init" / "schemes.py") in _modules()
