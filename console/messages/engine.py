"""The English words of the engine family of messages (`engine.*`); the page's table holds their Chinese."""

MESSAGES: dict[str, str | dict[str, str]] = {
    "engine.interrupted": "interrupted",
}
