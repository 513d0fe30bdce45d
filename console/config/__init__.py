"""Keep the user's settings and presets: the config package's public face."""

from __future__ import annotations

from .snippets import checked_snippets
from .store import ConfigStore
from .validation import ConfigError, NotFound

__all__ = ["checked_snippets", "ConfigError", "ConfigStore", "NotFound"]
