"""Send many requests as one batch to a provider's batch service (OpenAI's Batch API, Gemini's batch mode)."""

from .base import (BATCH_MODES, BatchAnswer, BatchLine, BatchService, BatchState, batch_mode, batch_request,
                   line_body, service_for)

__all__ = [
    "BATCH_MODES",
    "BatchAnswer",
    "BatchLine",
    "batch_mode",
    "batch_request",
    "BatchService",
    "BatchState",
    "line_body",
    "service_for",
]
