"""The torch floor that pyproject promises is the version CI installs (constraints.txt), the only one tested."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_torch_floor_is_the_tested_torch():
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    floors = [re.fullmatch(r"torch>=([\d.]+)", d) for d in deps if d.startswith("torch")]
    pins = re.findall(r"^torch==([\d.]+)$", (ROOT / "constraints.txt").read_text(), flags=re.M)
    assert len(floors) == 1 and floors[0] and len(pins) == 1
    assert pins[0].split(".")[:2] == floors[0].group(1).split(".")[:2]  # 2.13.0 pinned: floor 2.13
