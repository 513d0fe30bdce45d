"""What the reliability tests check on a run and its data folder, shared by the crash, fault and load tests."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import sqlite3
import threading
from pathlib import Path
from typing import Callable

from PIL import Image

from console.atomic import TEMP_PREFIX
from console.cache import ImageCache


def digest_of(path: Path) -> str:
    """The fake's name for a PNG source: the hash of the data URL the console sends for it."""
    return hashlib.sha256(f"data:image/png;base64,{base64.b64encode(path.read_bytes()).decode()}".encode()).hexdigest()


def integrity(database: Path) -> str:
    """Open the database as the next start would (the WAL replayed) and return PRAGMA integrity_check."""
    db = sqlite3.connect(database)
    try:
        return db.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        db.close()


def unreadable_results(folder: Path) -> list[str]:
    """Return the results the database refers to whose cached file is missing or does not decode."""
    db = sqlite3.connect(folder / "console.db")
    try:
        rows = db.execute("SELECT id, sha256, format FROM results").fetchall()
    finally:
        db.close()
    cache, bad = ImageCache(folder), []
    for result_id, sha256, fmt in rows:
        try:
            with Image.open(io.BytesIO(cache.path(sha256, fmt).read_bytes())) as image:
                image.load()
        except (OSError, ValueError) as exc:
            bad.append(f"{result_id}: {exc}")
    return bad


def partial_files(folder: Path) -> list[Path]:
    """Return the temporary files of atomic writes anywhere under `folder`."""
    return [Path(root, name) for root, _, names in os.walk(folder) for name in names if name.startswith(TEMP_PREFIX)]


class Poller:
    """Call `get(path)` every `every` seconds from a thread, like the page polling, and count 5xx answers."""

    def __init__(self, get: Callable[[str], object], path: Callable[[], str], every: float = 0.2) -> None:
        self.requests = self.server_errors = 0
        self._get, self._path, self._every = get, path, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.wait(self._every):
            try:
                answer = self._get(self._path())
            except Exception:  # a server being killed on purpose: not an answer
                continue
            self.requests += 1
            if answer.status_code >= 500:
                self.server_errors += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
