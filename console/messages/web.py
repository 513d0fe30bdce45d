"""The English words of the web family of messages (`web.*`); the page's table holds their Chinese."""

MESSAGES: dict[str, str | dict[str, str]] = {
}
