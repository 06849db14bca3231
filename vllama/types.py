"""The values that cross vllama's seams: models, requests to engines and the events they stream.

All are msgspec Structs so that they cross a process boundary (a worker per loaded model)
as cheaply as they cross a function call.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any, Literal

import msgspec

FinishReason = Literal["stop", "length"]


# -- hardware ---------------------------------------------------------------------------


class Device(msgspec.Struct, frozen=True, kw_only=True):
    """One compute device a probe found.

    ``kind`` is ``"cpu"``, ``"cuda"``, ``"metal"`` or whatever a third-party probe reports.
    """

    kind: str
    name: str
    index: int = 0
    memory_bytes: int = 0
    #: CPU cores (cpu) or streaming multiprocessors / GPU cores where known.
    cores: int = 0
    #: ISA flags (cpu) or compute capability (cuda, e.g. ``"9.0"``).
    features: tuple[str, ...] = ()
    driver: str = ""


class Hardware(msgspec.Struct, frozen=True):
    """Everything the probes found, probed once at start."""

    devices: tuple[Device, ...] = ()

    def of_kind(self, kind: str) -> tuple[Device, ...]:
        return tuple(d for d in self.devices if d.kind == kind)

    @property
    def cpu(self) -> Device | None:
        cpus = self.of_kind("cpu")
        return cpus[0] if cpus else None

    @property
    def has_nvidia(self) -> bool:
        return bool(self.of_kind("cuda"))

    @property
    def has_metal(self) -> bool:
        return bool(self.of_kind("metal"))


# -- models -----------------------------------------------------------------------------


class ModelDetails(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Ollama's ``details`` object, filled from the model's own metadata."""

    parent_model: str = ""
    format: str = ""
    family: str = ""
    families: list[str] | None = None
    parameter_size: str = ""
    quantization_level: str = ""


class Message(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One chat message, as Ollama carries it (images are raw bytes here)."""

    role: str
    content: str = ""
    thinking: str = ""
    images: list[bytes] = []
    tool_calls: list[ToolCall] = []
    tool_name: str = ""
    tool_call_id: str = ""


class ModelRef(msgspec.Struct, kw_only=True):
    """An installed model, resolved from its name: what a backend needs to load it.

    ``path`` is a file for single-file formats (gguf) and a directory otherwise.
    ``parameters`` are the Modelfile's PARAMETER values: sampling defaults and load settings.
    ``info`` holds the format's metadata keys for /api/show (``general.architecture``...).
    """

    name: str
    format: str
    path: str
    digest: str = ""
    size: int = 0
    details: ModelDetails = msgspec.field(default_factory=ModelDetails)
    info: dict[str, Any] = {}
    capabilities: list[str] = []
    parameters: dict[str, Any] = {}
    template: str = ""
    system: str = ""
    license: list[str] = []
    messages: list[Message] = []
    modified_at: str = ""


# -- requests to engines ---------------------------------------------------------------


class SamplingOptions(msgspec.Struct, kw_only=True):
    """Per-request sampling, fully resolved: Ollama's defaults, then the Modelfile, then the request."""

    temperature: float = 0.8
    top_k: int = 40
    top_p: float = 0.9
    min_p: float = 0.0
    typical_p: float = 1.0
    #: None means a random seed.
    seed: int | None = None
    #: -1 means until the model stops or the context is full.
    num_predict: int = -1
    stop: list[str] = []
    repeat_penalty: float = 1.0
    repeat_last_n: int = 64
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    num_keep: int = 4
    #: Generate past end-of-sequence tokens, until num_predict or the context ends: for
    #: benchmarks on equal work (OpenAI routes accept vLLM's ``ignore_eos`` for it).
    ignore_eos: bool = False


class LoadSettings(msgspec.Struct, kw_only=True):
    """How an engine is loaded. A change in any of these reloads the model."""

    num_ctx: int = 4096
    #: Sequences the engine must be able to run at once (its batch / slot count).
    parallel: int = 1
    num_batch: int = 512
    num_thread: int = 0
    num_gpu: int = -1
    #: Backend-specific settings (Modelfile PARAMETER lines and request options the backend
    #: declares in ``Backend.engine_settings``), passed through as given.
    engine: dict[str, Any] = {}


class ToolFunction(msgspec.Struct, kw_only=True, omit_defaults=True):
    name: str
    description: str = ""
    parameters: dict[str, Any] = {}


class Tool(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A tool the model may call (``{"type": "function", "function": {...}}``)."""

    function: ToolFunction
    type: str = "function"


class ToolCallFunction(msgspec.Struct, kw_only=True):
    name: str
    arguments: dict[str, Any] = {}
    index: int | None = None


class ToolCall(msgspec.Struct, kw_only=True, omit_defaults=True):
    function: ToolCallFunction
    id: str = ""


Format = Literal["json"] | dict[str, Any] | None
ThinkLevel = Literal["low", "medium", "high", "max"]
Think = bool | ThinkLevel | None


class _Generation(msgspec.Struct, kw_only=True):
    options: SamplingOptions = msgspec.field(default_factory=SamplingOptions)
    #: ``"json"`` or a JSON schema: constrain the output.
    format: Format = None
    think: Think = None
    logprobs: bool = False
    top_logprobs: int = 0


class GenerateRequest(_Generation, kw_only=True):
    """A completion. Unless ``raw``, the engine wraps ``prompt`` (and ``system``) in the
    model's chat template as one user turn, as Ollama does; a model without a template
    gets the prompt as it is."""

    prompt: str
    system: str = ""
    suffix: str = ""
    raw: bool = False
    images: list[bytes] = []
    #: Token ids of an earlier exchange (Ollama's deprecated ``context``), prepended.
    context: list[int] = []


class ChatRequest(_Generation, kw_only=True):
    """A chat turn, rendered with the model's own chat template."""

    messages: list[Message]
    tools: list[Tool] = []
    #: "required": the reply must be a call of one of ``tools`` (a named function is asked
    #: for by offering only that one); "auto": the model decides.
    tool_choice: Literal["auto", "required"] = "auto"
    #: Whether a reply may hold more than one call.
    parallel_tool_calls: bool = True
    #: How the model writes calls (:data:`vllama.tool_calls.FORMATS`), decided by the core
    #: from the Modelfile or the chat template; "" when no tools are offered.
    tool_format: str = ""
    #: A chat longer than the context loses its oldest messages (:mod:`vllama.truncation`);
    #: False: it is an error (:class:`~vllama.errors.ContextOverflow`).
    truncate: bool = True


class EmbedRequest(msgspec.Struct, kw_only=True):
    """Embed each input. The engine truncates inputs to its context when ``truncate`` is
    true and raises :class:`~vllama.errors.ContextOverflow` otherwise; vectors come back
    as the model pools them (the server normalises and applies ``dimensions``)."""

    inputs: list[str]
    truncate: bool = True


class RerankRequest(msgspec.Struct, kw_only=True):
    """Score how relevant each document is to ``query``, with a model that scores the pair
    itself (a cross-encoder, a reranker GGUF). ``truncate`` as in :class:`EmbedRequest`."""

    query: str
    documents: list[str]
    truncate: bool = True


# -- what engines stream back ---------------------------------------------------------


class TopLogprob(msgspec.Struct, kw_only=True):
    token: str
    logprob: float
    bytes: list[int] = []


class TokenLogprob(msgspec.Struct, kw_only=True):
    token: str
    logprob: float
    bytes: list[int] = []
    top_logprobs: list[TopLogprob] = []


class Delta(msgspec.Struct, tag="delta", kw_only=True, omit_defaults=True):
    """Newly generated output: any of text, thinking text, tool calls, and the logprobs of
    the tokens it came from."""

    text: str = ""
    thinking: str = ""
    tool_calls: list[ToolCall] = []
    logprobs: list[TokenLogprob] = []


class Done(msgspec.Struct, tag="done", kw_only=True):
    """The last event of every stream: why it ended and what it cost (durations in ns)."""

    reason: FinishReason = "stop"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    prompt_eval_ns: int = 0
    eval_ns: int = 0
    #: Token ids of prompt + reply, for Ollama's ``context`` (empty where unsupported).
    context: list[int] = []
    #: Messages of a chat left out to fit the context (:mod:`vllama.truncation`).
    dropped_messages: int = 0


Event = Delta | Done
#: What an engine streams and the core reads: events, closed by the core when its client leaves.
EventStream = AsyncGenerator[Event, None]


class Embeddings(msgspec.Struct, kw_only=True):
    vectors: list[list[float]]
    prompt_tokens: int = 0


#: How relevance scores were made: by a model that reads query and document together, or as
#: the cosine similarity of their embeddings (where the model is a plain embedder).
Scoring = Literal["cross-encoder", "embedding-similarity"]


class RerankScores(msgspec.Struct, kw_only=True):
    """One relevance score per document, in the request's order; higher is more relevant."""

    scores: list[float]
    prompt_tokens: int = 0
    scoring: Scoring = "cross-encoder"


class PrefixCacheStats(msgspec.Struct, kw_only=True):
    """What a prefix cache has done since the model loaded, for /api/ps and /metrics."""

    #: Admitted prompts that began with cached tokens (in the KV cache, copied from a running
    #: sequence or restored from host memory), and those that did not.
    hits: int = 0
    misses: int = 0
    #: Prompt tokens not prefilled because their state was cached.
    tokens_saved: int = 0
    #: States restored from host memory, and copied from running sequences.
    restores: int = 0
    copies: int = 0
    #: States in host memory, their bytes, the budget, and states evicted to keep within it.
    entries: int = 0
    bytes: int = 0
    budget_bytes: int = 0
    evictions: int = 0

    def admitted(self, reused: int, *, restored: bool = False, copied: bool = False) -> None:
        """Count one admitted prompt whose first ``reused`` tokens came from a cache."""
        if reused:
            self.hits += 1
            self.tokens_saved += reused
        else:
            self.misses += 1
        self.restores += restored
        self.copies += copied


class EngineInfo(msgspec.Struct, kw_only=True):
    """What a loaded engine reports for /api/ps and /api/show."""

    #: Bytes the engine holds (weights + cache), and how many of them sit on an accelerator.
    size: int = 0
    size_vram: int = 0
    context_length: int = 0
    #: Sequences it runs at once.
    parallel: int = 1
    #: Extra model_info keys the engine knows (e.g. KV cache size).
    info: dict[str, Any] = {}
    #: What its prefix cache has done, for engines that keep one.
    prefix_cache: PrefixCacheStats | None = None
