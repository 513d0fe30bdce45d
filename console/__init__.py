"""Image Batch Console: batch image generation and editing through OpenAI-compatible APIs."""

__version__ = "0.1.0"
