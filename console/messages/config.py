"""The English words of the config family of messages (`config.*`); the page's table holds their Chinese."""

MESSAGES: dict[str, str | dict[str, str]] = {
}
