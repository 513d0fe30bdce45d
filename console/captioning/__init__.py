"""Captioning with a vision model: the instruction presets, the image a call sends, the caption an
answer makes, and a job's order and progress. The engine runs the jobs (`console.engine`)."""

from .answer import CAPTION_MAX_BYTES, NoCaption, caption_from, capped
from .image import ImageProblem, caption_jpeg
from .jobs import FAILURES_SHOWN, SOURCES, CaptionItem, CaptionJob, CaptionOrder, JobSpend
from .presets import INSTRUCTION_MAX_BYTES, INSTRUCTIONS, LONG_SIDE, presets

__all__ = ["capped", "caption_from", "caption_jpeg", "CAPTION_MAX_BYTES", "CaptionItem", "CaptionJob", "CaptionOrder",
           "FAILURES_SHOWN", "ImageProblem", "INSTRUCTION_MAX_BYTES", "INSTRUCTIONS", "JobSpend", "LONG_SIDE",
           "NoCaption", "presets", "SOURCES"]
