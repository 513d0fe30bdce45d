"""The English words of the saving family of messages (`saving.*`); the page's table holds their Chinese."""

MESSAGES: dict[str, str | dict[str, str]] = {
}
