"""Run tasks against the upstream: concurrency per run, stop, retry, resume.

`Engine` is the one entry point; it raises the domain errors below, which the web layer maps to
HTTP statuses. Inside: `bridge` (the loop thread and its pools), `scheduler` (queues and
concurrency per run), `tasks` (one task from start to final status), `core` (the public methods).
"""

from .core import Engine
from .errors import Busy, Conflict, EngineError, NotFound
from .scheduler import Limiter

__all__ = ["Busy", "Conflict", "Engine", "EngineError", "Limiter", "NotFound"]
