"""Comments and docstrings say why, never which issue or which document outside the repository.

A reader of the code has the repository and its docs/ only: an issue number or a section of a
design note kept elsewhere tells them nothing. Python files are read with `tokenize`, so only
comments and docstrings count (a test may well give a folder such a name in a string); the page's
files (JavaScript, CSS, HTML) and shell scripts are read whole.
"""

from __future__ import annotations

import io
import re
import tokenize
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent
SCANNED = ("console", "bench", "tests", "testkit", "static", "scripts")
SUFFIXES = (".py", ".js", ".mjs", ".css", ".html", ".sh")

# An issue or pull-request number, a note kept outside the repository, or one of its section signs.
CITATION = re.compile(r"\b[Ii]ssues? #?\d+|\(#\d+\)|\bPR #?\d+|\bDESIGN\b|\bPROTOCOL\b|\bDATASETS\.md|\bSTYLE\.md"
                      r"|\bshared/|(?<!RFC \d{4} )§ ?\d")
# Genuine non-citations: (file, the line's text) pairs the pattern matches without citing anything.
ALLOWED: set[tuple[str, str]] = set()


def python_prose(source: str) -> list[tuple[int, str]]:
    """Return the comments and docstrings of Python `source`, each with the line it starts on."""
    found: list[tuple[int, str]] = []
    statement_start = True
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            found.append((token.start[0], token.string))
        elif token.type == tokenize.STRING and statement_start:
            found.append((token.start[0], token.string))  # a string statement: a docstring
        if token.type in (tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT):
            statement_start = True
        elif token.type not in (tokenize.NL, tokenize.COMMENT, tokenize.ENCODING):
            statement_start = False
    return found


def citations(name: str, text: str) -> list[str]:
    """Return `name:line: text` for every citation in the prose of one file."""
    prose = python_prose(text) if name.endswith(".py") else [(1, text)]
    hits = []
    for first_line, chunk in prose:
        lines = chunk.split("\n")
        for offset, line in enumerate(lines):
            if CITATION.search(line) and (name, line.strip()) not in ALLOWED:
                hits.append(f"{name}:{first_line + offset}: {line.strip()}")
    return hits


def scanned_files() -> list[Path]:
    """Return the code, tests, scripts and page files of the repository, plus its top-level scripts."""
    files = [p for folder in SCANNED for p in (ROOT / folder).rglob("*")
             if p.suffix in SUFFIXES and p.is_file() and "__pycache__" not in p.parts]
    files += [p for p in ROOT.glob("*") if p.suffix in (".py", ".sh") and p.is_file()]
    return sorted(files)


def test_the_scan_finds_citations_in_comments_and_docstrings_only():
    source = '''"""Retry what is transient (DESIGN §4)."""
x = "shared/dataset_target"  # a folder name, not a citation
y = 1  # bench, issue 9
def f():
    """Fold every answer shape.

    Chunks split anywhere (§5.8).
    """
    return "RFC 9110 §5.1"  # RFC 9110 §5.1: a header name is a token
'''
    assert citations("m.py", source) == [
        "m.py:1: \"\"\"Retry what is transient (DESIGN §4).\"\"\"",
        "m.py:3: # bench, issue 9",
        "m.py:7: Chunks split anywhere (§5.8).",
    ]
    assert citations("a.js", "// Saving (issue 11)\nconst url = '/api/runs';\n") == ["a.js:1: // Saving (issue 11)"]


def test_no_file_cites_an_issue_or_a_document_outside_the_repository():
    hits = [hit for path in scanned_files()
            for hit in citations(path.relative_to(ROOT).as_posix(), path.read_text(encoding="utf-8"))]
    assert hits == [], "say why instead of citing:\n" + "\n".join(hits)
