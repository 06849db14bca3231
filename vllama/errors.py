"""Typed errors, raised where a failure happens and turned into HTTP once (server/errors.py).

Messages are written for the person who reads them and follow Ollama's wording where it has one.
"""

from __future__ import annotations


class VllamaError(Exception):
    """Base class. ``status`` is the HTTP status the server answers with."""

    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(VllamaError):
    """The request is malformed or asks for something invalid."""

    status = 400


class InvalidName(BadRequest):
    """A model name that is not valid (or could escape the model store)."""


class Unsupported(BadRequest):
    """The model or its engine cannot do what was asked (``"x" does not support chat``)."""


class ContextOverflow(BadRequest):
    """The input does not fit the context and truncation was not allowed."""


class NotFound(VllamaError):
    """A model, blob or file that does not exist. The message is the whole answer."""

    status = 404


class ModelNotFound(NotFound):
    def __init__(self, name: str) -> None:
        super().__init__(f"model '{name}' not found")
        self.name = name


class ServerBusy(VllamaError):
    """The queue is full (Ollama's OLLAMA_MAX_QUEUE)."""

    status = 503

    def __init__(self) -> None:
        super().__init__("server busy, please try again.  maximum pending requests exceeded")


class ClientGone(VllamaError):
    """The client hung up before its request started; nobody reads the answer (nginx's 499)."""

    status = 499

    def __init__(self) -> None:
        super().__init__("the client disconnected")


class EngineError(VllamaError):
    """The engine failed: it could not load, crashed, or ran out of memory."""


class PluginError(VllamaError):
    """A plugin registered something inconsistent (e.g. two backends with one name)."""


class NoBackend(VllamaError):
    """No installed backend can run this model on this machine."""

    status = 500
