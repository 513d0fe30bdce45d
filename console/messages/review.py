"""The English words of the review family of messages (`review.*`): why a result was flagged."""

MESSAGES: dict[str, str | dict[str, str]] = {
}
