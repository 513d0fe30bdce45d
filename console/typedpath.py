"""Read a path the way people give it: `~`, in quotes (a file manager's "copy path"), or a file:// URL.

A Chinese input method types quotes and the tilde full-width (“…”, 「…」, ‘…’, ～/): they are read as
the ASCII ones they stand for, since a path never starts and ends with them on purpose.
"""

from __future__ import annotations

import os
from urllib.parse import unquote, urlsplit

from .messages import say

QUOTES = {"'": "'", '"': '"', "“": "”", "‘": "’", "「": "」", "『": "』"}  # opening → closing
FULL_WIDTH_HOME = "～"  # U+FF5E, what an input method types for ~

# What every "must be an absolute path" message lists, so the person knows what to paste instead
# (a message: pass it whole as a parameter, so the page says it in its own language).
FORMS = say("sources.path_forms")


def typed_path(text: str) -> str:
    """Return the path `text` names: trimmed, its quotes and a file:// URL's form taken off, `~` expanded.

    Whether it is absolute is the caller's to check (a table's cells may be relative to the table).
    """
    value = text.strip()
    if len(value) >= 2 and QUOTES.get(value[0]) == value[-1]:
        value = value[1:-1].strip()
    if value == FULL_WIDTH_HOME or value.startswith(FULL_WIDTH_HOME + "/"):
        value = "~" + value[1:]
    if value[:7].lower() == "file://":
        parts = urlsplit(value)
        local = parts.netloc.lower() in ("", "localhost")  # file://host/… is another machine's: left relative
        value = unquote(parts.path if local else parts.netloc + parts.path, errors="surrogateescape")
    return os.path.expanduser(value)
