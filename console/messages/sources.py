"""The English words of the sources family of messages (`sources.*`); the page's table holds their Chinese."""

MESSAGES: dict[str, str | dict[str, str]] = {
}
