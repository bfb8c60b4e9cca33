"""Screenshots of the built documentation site, taken with headless Chromium, into docs/screenshots/.

Builds the site (`mkdocs build --strict`) into a temporary folder and photographs the home page, every API
page and the Diagnostics page, full width, each as a PNG named after its page. Chromium comes from the
system (`apt-get install -y chromium`); the pages are read from disk, so nothing is served.

Run from the repository root, with the docs extra installed: `python docs/site_screenshots.py`.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "screenshots"
# page (as built, under the site) -> (screenshot name, height in pixels: enough for what a reader sees first)
PAGES = {
    "index.html": ("home", 1400),
    "diagnostics/index.html": ("diagnostics", 3000),
    "api/index.html": ("api_overview", 1800),
    "api/init/index.html": ("api_init", 2400),
    "api/weightnorm/index.html": ("api_weightnorm", 2000),
    "api/structure/index.html": ("api_structure", 2000),
    "api/peers/index.html": ("api_peers", 2000),
    "api/diagnostics/index.html": ("api_diagnostics", 2000),
    "api/models/index.html": ("api_models", 2000),
    "api/suite/index.html": ("api_suite", 2000),
}
WIDTH = 1280


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    sys.exit("no Chromium found: install it (apt-get install -y chromium) and run again")


def build(site: Path) -> None:
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1",
               PYTHONPATH=os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]))
    subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(site)], cwd=ROOT, env=env,
                   check=True)


def shoot(browser: str, page: Path, png: Path, height: int) -> None:
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--window-size={WIDTH},{height}", f"--screenshot={png}", page.as_uri()],
                   check=True, capture_output=True, timeout=120)


def main() -> None:
    browser = _chromium()
    OUT.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp) / "site"
        build(site)
        for page, (name, height) in PAGES.items():
            shoot(browser, site / page, OUT / f"{name}.png", height)
            print(f"docs/screenshots/{name}.png  <- {page}")


if __name__ == "__main__":
    main()
