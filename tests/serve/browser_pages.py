"""Helpers of the Chromium page tests (test_page.py, test_page_reviews.py): the browser's
flags, the screenshot check, the en dash the page writes ranges with. (A module of its own:
a name imported from ``conftest`` is ambiguous when the whole suite is collected.)"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

CHROMIUM = shutil.which("chromium")  # Debian's; `make setup` installs it
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
DASH = "\u2013"  # the page writes ranges with an en dash
SCREENS = Path(__file__).parents[2] / "benchmarks" / "results" / "screens"


def check_screenshot(path: Path) -> None:
    """A real picture: large enough, and many colours (not a blank or one-colour page).
    ``EARMARK_SCREENSHOTS=1`` also copies it to ``benchmarks/results/screens/``."""
    from PIL import Image

    with Image.open(path) as im:
        assert im.width >= 380 and im.height >= 600
        colours = im.convert("RGB").getcolors(maxcolors=1_000_000)
        assert colours is not None and len(colours) > 200, f"{path.name} looks blank"
    if os.environ.get("EARMARK_SCREENSHOTS"):
        SCREENS.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, SCREENS / path.name)
