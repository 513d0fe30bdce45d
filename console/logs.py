"""Route log records: one line per event for the terminal, full tracebacks in a file in the data dir."""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
from pathlib import Path

from .masking import redact_patterns

LOG_DIR = "logs"
LOG_FILE = "console.log"
LOG_FILE_BYTES = 2 * 1024 * 1024
LOG_FILE_BACKUPS = 3
LOG_HINT = f"{LOG_DIR}/{LOG_FILE} in the data folder"  # where error messages send people
TERMINAL_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class RedactingFormatter(logging.Formatter):
    """Format a record in full, tracebacks included, without the credentials it quotes (Bearer tokens, `?key=…`)."""

    def format(self, record: logging.LogRecord) -> str:
        return redact_patterns(super().format(record))


class OneLineFormatter(logging.Formatter):
    """Format a record on one line: the message, then the exception's type and text, no traceback.

    The terminal shows what failed and why; the traceback is for the log file. Credentials
    the line quotes are redacted, as in the file.
    """

    def format(self, record: logging.LogRecord) -> str:
        bare = logging.makeLogRecord({**record.__dict__, "exc_info": None, "exc_text": None, "stack_info": None})
        line = super().format(bare)
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            line += f": {type(exc).__name__}: {exc}"
        return redact_patterns(" ".join(line.splitlines()))


def setup(data_dir: Path, extra: list[logging.Handler], *, terminal: bool) -> Path:
    """Log to `extra` handlers and, when `terminal`, stderr, one line each; everything in full to the file.

    Return the log file's path.
    """
    path = Path(data_dir) / LOG_DIR / LOG_FILE
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    previous = os.umask(0o077)  # the file may quote upstream answers: readable by the owner only
    try:
        to_file = logging.handlers.RotatingFileHandler(path, maxBytes=LOG_FILE_BYTES,
                                                       backupCount=LOG_FILE_BACKUPS, encoding="utf-8")
    finally:
        os.umask(previous)
    to_file.setFormatter(RedactingFormatter(TERMINAL_FORMAT))
    handlers: list[logging.Handler] = [to_file, *extra]
    if terminal:
        stream = logging.StreamHandler(sys.stderr)
        stream.setFormatter(OneLineFormatter(TERMINAL_FORMAT))
        handlers.append(stream)
    logging.basicConfig(level=logging.INFO, handlers=handlers, force=True)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per poll would drown everything
    logging.getLogger("httpx").setLevel(logging.WARNING)
    return path
