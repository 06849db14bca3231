"""The HTTP server: Ollama's API and OpenAI's, on Litestar with msgspec codecs."""
