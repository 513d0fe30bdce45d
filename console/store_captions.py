"""The store's captions: a result's own caption, the model's answer text, find and replace across a run.

Mixed into Store: it uses the store's connections and revision counter.
"""

from __future__ import annotations


class CaptionQueries:
    """Store methods of results' captions."""
