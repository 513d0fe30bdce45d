"""The English words of the upstream family of messages (`upstream.*`); the page's table holds their Chinese."""

MESSAGES: dict[str, str | dict[str, str]] = {
}
