"""The engine contract: what a backend package implements.

A :class:`Backend` is a class registered through the ``register_backends`` hook. It says
which model formats it runs, how well it fits a model on this hardware (:meth:`Backend.supports`),
and loads an :class:`Engine`. Generation is a plain async method call on the engine: the hot
path never goes through a hook.
"""

from __future__ import annotations

import abc
from collections.abc import Collection, Mapping
from typing import Any, ClassVar, Self

import msgspec

from vllama.errors import BadRequest
from vllama.types import (
    ChatRequest,
    Embeddings,
    EmbedRequest,
    EngineInfo,
    EventStream,
    GenerateRequest,
    Hardware,
    LoadSettings,
    ModelRef,
    RerankRequest,
    RerankScores,
)

#: Capabilities a backend may declare. The server answers 400 for a request that needs one
#: the backend lacks (e.g. ``format`` without "format").
CAPABILITIES = frozenset({"completion", "chat", "embedding", "tools", "thinking", "vision", "insert", "format", "logprobs", "rerank"})


class Support(msgspec.Struct, frozen=True, kw_only=True):
    """A backend's answer to "can you run this model here?"

    ``score`` ranks candidates: the default policy picks the highest. By convention 100 is
    "the engine this hardware is for" (vLLM on NVIDIA), 50 "a good fit", 10 "works as a fallback".
    ``parallel`` is the number of sequences it runs at once by default on this hardware.
    ``capabilities`` narrows what the backend can do for this one model.
    """

    score: int
    reason: str = ""
    parallel: int = 1
    #: What the backend can do with this model, where that is less than its class-level
    #: :attr:`Backend.capabilities` (vLLM serves a model either as a generator or as an
    #: embedder); None: all of them.
    capabilities: frozenset[str] | None = None


class EngineSettings(msgspec.Struct, kw_only=True):
    """A backend's engine settings, typed. Subclass it with one field per setting and its
    default, constrained with msgspec (``Annotated[int, msgspec.Meta(ge=1)]``, ``Literal``
    choices), and name it in :attr:`Backend.settings_type`: the core derives
    :attr:`Backend.engine_settings` from its fields and checks every value a Modelfile, a
    request or ``vllama serve --engine`` gives before any load."""

    @classmethod
    def of(cls, settings: Mapping[str, Any]) -> Self:
        """The settings in ``settings`` that this struct has, typed (strings and numbers as
        a Modelfile gives them are converted); others are left out. Raises
        ``msgspec.ValidationError`` for a bad value: the core has checked every value before
        a load, so a backend's ``load`` may call this without a check of its own."""
        names = {f.encode_name for f in msgspec.structs.fields(cls)}
        return msgspec.convert({k: v for k, v in settings.items() if k in names}, cls, strict=False)


class Backend(abc.ABC):
    """A family of engines (llama.cpp, vLLM, MLX, ...). Subclass and register the class.

    Importing the module that defines a backend must not import its inference library:
    do that in :meth:`load`.
    """

    #: Unique short name, used by ``VLLAMA_BACKEND`` and shown by /api/ps.
    name: ClassVar[str]
    #: Model formats it can load ("gguf", "safetensors", "mlx", ...).
    formats: ClassVar[frozenset[str]]
    #: What its engines can do; a subset of :data:`CAPABILITIES`.
    capabilities: ClassVar[frozenset[str]] = frozenset({"completion", "chat"})
    #: Its engines emit ``Delta.tool_calls`` themselves. Otherwise, when it declares "tools",
    #: the core parses calls out of the text it streams (:mod:`vllama.tool_calls`).
    parses_tool_calls: ClassVar[bool] = False
    #: Run each engine in its own worker process, so a crash or an unload returns memory.
    isolated: ClassVar[bool] = True
    #: Engine settings it accepts beyond Ollama's options (Modelfile PARAMETER lines);
    #: they reach :meth:`load` in ``LoadSettings.engine``. Derived from :attr:`settings_type`
    #: when the backend has one.
    engine_settings: ClassVar[frozenset[str]] = frozenset()
    #: Its engine settings as a typed struct, which checks their values itself.
    settings_type: ClassVar[type[EngineSettings] | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        typed = cls.__dict__.get("settings_type")
        if typed is not None:
            cls.engine_settings = frozenset(f.encode_name for f in msgspec.structs.fields(typed))

    @classmethod
    def memory_needed(cls, model: ModelRef, hardware: Hardware, settings: LoadSettings) -> int | None:
        """Bytes of system memory a load of ``model`` with ``settings`` takes (the weights and
        the caches the engine allocates), checked against what is available before any load;
        None where the backend checks for itself. Called on the event loop before each load:
        keep it cheap. The default is the core's estimate (:func:`vllama.memory.needed_bytes`)."""
        from vllama import memory

        return memory.needed_bytes(model, settings)

    @classmethod
    def tool_parsers(cls) -> Collection[str]:
        """Call formats beyond the core's (:data:`vllama.tool_calls.FORMATS`) that this
        backend's engines parse with their library's own parsers, for ``PARAMETER
        tool_parser NAME``; only a backend with :attr:`parses_tool_calls` has any. Called off
        the event loop when a request names a format the core lacks, so it may import the
        library. The default: none."""
        return ()

    @classmethod
    def reasoning_parsers(cls) -> Collection[str]:
        """Reasoning parsers of the backend's library, for ``PARAMETER reasoning_parser NAME``
        (other backends split thinking with the core's parser, :mod:`vllama.thinking`).
        Called off the event loop when a model names one, so it may import the library. The
        default: none."""
        return ()

    @classmethod
    def check_engine_settings(cls, settings: Mapping[str, Any]) -> None:
        """Raise :class:`~vllama.errors.BadRequest` naming a setting whose value is outside
        its valid range. ``settings`` holds those of :attr:`engine_settings` that a request
        or a Modelfile sets; this runs before any load and when a model is created, so a bad
        value costs no load. The default checks them against :attr:`settings_type`, and
        accepts every value without one."""
        if cls.settings_type is None:
            return
        for key, value in settings.items():
            try:
                msgspec.convert({key: value}, cls.settings_type, strict=False)
            except msgspec.ValidationError as e:
                reason = str(e).split(" - at ")[0]
                got = "" if ", got " in reason or repr(value) in reason else f", got {value!r}"
                raise BadRequest(f'engine setting "{key}": {reason}{got}') from None

    @classmethod
    @abc.abstractmethod
    def supports(cls, model: ModelRef, hardware: Hardware) -> Support | None:
        """Say whether and how well this backend runs ``model`` on ``hardware``; None if not.

        Must be cheap: no engine imports, no model loading.
        """

    @classmethod
    @abc.abstractmethod
    async def load(cls, model: ModelRef, hardware: Hardware, settings: LoadSettings) -> Engine:
        """Load the model and return a ready engine. Raise :class:`~vllama.errors.EngineError`
        (or a subclass) with a clear message when it cannot load."""


class Engine(abc.ABC):
    """A loaded model. Streams are cancellable: when the consumer stops iterating (its
    client went away), the engine must free the sequence at once, in ``finally``."""

    @abc.abstractmethod
    def generate(self, request: GenerateRequest) -> EventStream:
        """Stream a completion: :class:`~vllama.types.Delta` events, then one ``Done``."""

    @abc.abstractmethod
    def chat(self, request: ChatRequest) -> EventStream:
        """Stream a chat reply with the model's own template; ``Done`` comes last."""

    async def embed(self, request: EmbedRequest) -> Embeddings:
        """Embed each input. Engines whose backend lacks "embedding" keep this default."""
        from vllama.errors import Unsupported

        raise Unsupported("this model does not support embeddings")

    async def rerank(self, request: RerankRequest) -> RerankScores:
        """Score each document against the query with a reranker model (the backend declares
        "rerank" and the model is one). Plain embedders need not: the core scores them by the
        similarity of their embeddings."""
        from vllama.errors import Unsupported

        raise Unsupported("this model does not support rerank")

    @abc.abstractmethod
    def info(self) -> EngineInfo:
        """Memory footprint and runtime facts for /api/ps and /api/show. Cheap."""

    @property
    def alive(self) -> bool:
        """Whether the engine can still serve requests. An engine whose library can die
        under it (an engine process of its own that crashed, a lost device) answers False
        from then on: the scheduler then unloads it (its running requests have failed with
        it) and the next request loads the model again. Read before and after every request:
        keep it cheap. The default: always True."""
        return True

    @abc.abstractmethod
    async def close(self) -> None:
        """Release everything the engine holds. Called once, when the model unloads."""
