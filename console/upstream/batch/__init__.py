"""Send many requests as one batch to a provider's batch service (OpenAI's Batch API, Gemini's batch mode)."""

from .base import (BATCH_MODES, BatchAnswer, BatchLine, BatchService, BatchState, batch_mode, batch_request,
                   line_body, service_for)

__all__ = [
    "batch_mode",
    "BATCH_MODES",
    "batch_request",
    "BatchAnswer",
    "BatchLine",
    "BatchService",
    "BatchState",
    "line_body",
    "service_for",
]
