"""The one error the prompt sources raise: a readable message, with the bad rows or files listed."""

from __future__ import annotations

from typing import Any

LISTED = 20  # names spelled out in a message; the full list rides along in `files` / `rows`


class SourceProblem(ValueError):
    """Input a run cannot be made from; str(e) is readable, `details` lists every bad row or file.

    `details` holds `rows` ([{"row", "error"}], spreadsheet numbering) for a table and `files`
    ([{"name", "error"}]) for sources, sidecars and references, so a page can show each one,
    with `summary`: the message without the list.
    """

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.details = details


def listing(items: list[str], shown: int = LISTED) -> str:
    """Return `a, b, c` or `a, b, … and 12 more` for a message."""
    head = ", ".join(items[:shown])
    return head if len(items) <= shown else f"{head} … and {len(items) - shown} more"


def file_problem(what: str, bad: list[dict[str, str]]) -> SourceProblem:
    """Return a SourceProblem naming each file of `bad` ([{"name", "error"}]) after `what`."""
    shown = [f"{item['name']} ({item['error']})" for item in bad]
    return SourceProblem(f"{what}: {listing(shown)}", files=bad, summary=what)
