"""The one error the prompt sources raise: a readable message, with the bad rows or files listed."""

from __future__ import annotations

from typing import Any

from ..messages import Message, say

LISTED = 20  # names spelled out in a message; the full list rides along in `files` / `rows`


class SourceProblem(ValueError):
    """Input a run cannot be made from; str(e) is readable, `details` lists every bad row or file.

    `details` holds `rows` ([{"row", "error"}], spreadsheet numbering) for a table and `files`
    ([{"name", "error"}]) for sources, sidecars and references, so a page can show each one,
    with `summary`: the message without the list. Every message is a Message (its code goes beside it).
    """

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.details = details


def listing(items: list[Message], shown: int = LISTED) -> list[Message]:
    """Return the items a message names (a list parameter: `a; b; c`), the rest counted (`… and 12 more`)."""
    head = list(items[:shown])
    return head if len(items) <= shown else head + [say("sources.and_more", count=len(items) - shown)]


def joined(problems: list[Message]) -> Message:
    """Return one message for a row's or a file's problems: the one, or all of them (`a; b`)."""
    return problems[0] if len(problems) == 1 else say("sources.problems", problems=list(problems))


def file_problem(what: Message, bad: list[dict[str, Any]]) -> SourceProblem:
    """Return a SourceProblem naming each file of `bad` ([{"name", "error"}]) after `what`."""
    shown = [say("sources.file_item", name=item["name"], error=item["error"]) for item in bad]
    return SourceProblem(say("sources.files_listed", what=what, files=listing(shown)), files=bad, summary=what)
