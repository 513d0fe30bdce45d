"""Locate files shipped with the program, from a checkout or inside the one-file binary."""

from __future__ import annotations

import sys
from pathlib import Path


def root() -> Path:
    """Return the folder holding `static/` (the checkout, or PyInstaller's unpack dir)."""
    frozen = getattr(sys, "_MEIPASS", None)
    return Path(frozen) if frozen else Path(__file__).resolve().parent.parent


def static_dir() -> Path:
    """Return the review page's folder: the installed package's, else `static/` of the checkout or the binary."""
    installed = Path(__file__).resolve().parent / "static"  # `pip install` puts the page inside the package
    return installed if installed.is_dir() else root() / "static"
