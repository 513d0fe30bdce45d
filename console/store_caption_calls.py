"""The store's captioning calls: each call a captioning job makes, counted in the run's spend.

Mixed into Store: it uses the store's connections and revision counter.
"""

from __future__ import annotations


class CaptionCallQueries:
    """Store methods of the calls captioning jobs make."""
