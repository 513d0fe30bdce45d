"""The engine's domain errors; the web layer alone maps them to HTTP statuses."""

from __future__ import annotations

from typing import Any


class EngineError(Exception):
    """An engine action that cannot be done as asked; str(e) is a readable message.

    `details` are further fields of the answer, e.g. every bad table row.
    """

    def __init__(self, message: str = "", **details: Any) -> None:
        super().__init__(message)
        self.details = details


class NotFound(EngineError):
    """No run, task or result has that id."""


class Conflict(EngineError):
    """The action clashes with what the item is doing now (a running task cannot be retried)."""


class Busy(EngineError):
    """The engine cannot take the action now (it is not running, or it did not answer in time)."""
