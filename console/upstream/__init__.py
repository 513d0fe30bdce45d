"""Talk to an OpenAI-compatible image API: build requests, decode answers, fetch images."""
