"""The English words of the review family of messages (`review.*`): why a result was flagged."""

MESSAGES: dict[str, str | dict[str, str]] = {
    "review.blank": "nearly one colour (its tones span {spread} of 255 levels)",
    "review.off_size_requested": "{size} is {off}% off the aspect of the requested size",
    "review.off_size_source": "{size} is {off}% off the aspect of the source's {source}",
    "review.unchanged": "the source again (cells differ by {mean:.1f} levels on average)",
    "review.unrelated": "shares almost no structure with the source (correlation {correlation:.2f})",
    "review.near_duplicate": "the same picture as the result of task #{number} ({name})",
}
