"""``format`` (any JSON object, or a JSON schema) as an mlx-lm logits processor, with llguidance.

:class:`FormatCompiler` holds the model's vocabulary as llguidance reads it (built at the first
request with a format, on a thread of its own, so that neither the load nor requests without a
format pay for it, and the event loop does not wait for it) and turns a request's ``format``
into a :class:`FormatMask`: one sequence's grammar state, which mlx-lm calls before each
sampling step of that sequence only. The mask lets the end-of-generation tokens through only
where the grammar is complete, and only them once it cannot go on, so the reply ends with the
value. llguidance was chosen by what a request pays per token, its compile included
(``bench/format_mlx.py``; figures in docs/performance.md).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from vllama.errors import BadRequest, Unsupported
from vllama.types import Format

log = logging.getLogger("vllama.mlx")

#: ``format: "json"``: any JSON object, as Ollama's grammar for it.
ANY_OBJECT: dict[str, Any] = {"type": "object"}


class FormatCompiler:
    """Compiles requests' formats for one model: ``tokenizer`` is mlx-lm's TokenizerWrapper,
    ``n_vocab`` the width of the model's logits."""

    def __init__(self, tokenizer: Any, n_vocab: int) -> None:
        self._tokenizer = tokenizer
        self._n_vocab = max(n_vocab, len(tokenizer))
        self._lock = threading.Lock()
        self._vocabulary: Future[Any] | None = None

    def vocabulary(self) -> Future[Any]:
        """llguidance's view of the vocabulary: started on a thread of its own at the first call."""
        with self._lock:
            if self._vocabulary is None:
                self._vocabulary = Future()
                threading.Thread(target=self._build, args=(self._vocabulary,), name="mlx-format-vocab", daemon=True).start()
            return self._vocabulary

    def _build(self, future: Future[Any]) -> None:
        try:
            import llguidance.hf

            hf = getattr(self._tokenizer, "_tokenizer", self._tokenizer)
            eos = sorted(self._tokenizer.eos_token_ids)
            future.set_result(llguidance.hf.from_tokenizer(hf, n_vocab=self._n_vocab, eos_token=eos))
        except BaseException as e:  # handed to the requests with a format
            future.set_exception(e)

    def mask(self, fmt: Format) -> FormatMask:
        """A new sequence's grammar state for ``fmt`` (blocks until :meth:`vocabulary` is built);
        BadRequest for a schema llguidance cannot compile, Unsupported where llguidance cannot
        read the model's tokenizer."""
        import llguidance

        grammar = grammar_for(fmt)
        try:
            vocabulary = self.vocabulary().result()
        except Exception as e:
            raise Unsupported(f"structured output (format) is not available for this model's tokenizer: {e}") from None
        matcher = llguidance.LLMatcher(vocabulary, grammar, log_level=0)
        if matcher.is_error():
            raise BadRequest(f"invalid JSON schema in format: {matcher.get_error().strip()}")
        return FormatMask(matcher, self._n_vocab)


def grammar_for(fmt: Format) -> str:
    """llguidance's grammar for ``fmt`` ("json" or a JSON schema), its objects :func:`closed`;
    its whitespace is free, as vLLM's structured outputs have it by default."""
    import llguidance

    schema = ANY_OBJECT if fmt == "json" else fmt
    if not isinstance(schema, dict):
        raise BadRequest(f"invalid format: {fmt!r}")
    try:
        return str(llguidance.LLMatcher.grammar_from_json_schema(json.dumps(closed(schema))))
    except (ValueError, TypeError) as e:
        raise BadRequest(f"invalid JSON schema in format: {e}") from None


#: Keywords whose value is a schema, a list of schemas, or a map of names to schemas.
_ONE = (
    "items",
    "additionalProperties",
    "additionalItems",
    "unevaluatedProperties",
    "unevaluatedItems",
    "contains",
    "propertyNames",
    "not",
    "if",
    "then",
    "else",
)
_LIST = ("anyOf", "oneOf", "prefixItems")
_MAP = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")


def closed(schema: Any) -> Any:
    """``schema`` with ``additionalProperties: false`` on each object schema that lists its
    ``properties`` and says nothing of others, as Ollama's grammars (llama.cpp's converter)
    read a schema: the reply has the properties asked for and ends there. The branches of an
    ``allOf`` are left open (each names only part of the object); values (``const``, ``enum``,
    ``default``...) are never touched."""
    if not isinstance(schema, dict):
        return schema
    out = dict(schema)
    if isinstance(out.get("properties"), dict) and "additionalProperties" not in out:
        out["additionalProperties"] = False
    for key in _ONE:
        if key in out:
            value = out[key]
            out[key] = [closed(s) for s in value] if isinstance(value, list) else closed(value)
    for key in _LIST:
        if isinstance(out.get(key), list):
            out[key] = [closed(s) for s in out[key]]
    for key in _MAP:
        if isinstance(out.get(key), dict):
            out[key] = {name: closed(s) for name, s in out[key].items()}
    return out


class FormatMask:
    """One sequence's grammar state, called by mlx-lm as a logits processor (loop thread).

    mlx-lm passes the sequence's tokens so far: the prompt at the first call, then one more
    token each call (the one sampled last), which advances the matcher before the next mask.
    """

    def __init__(self, matcher: Any, n_vocab: int) -> None:
        import numpy as np

        self._matcher: Any = matcher
        self._bits = np.full((1, (n_vocab + 31) // 32), -1, dtype=np.int32)
        #: Tokens mlx-lm had passed at the last call; -1 before the first.
        self._seen = -1
        self._waiting: Callable[[], bool] | None = None

    def wait_while(self, waiting: Callable[[], bool]) -> None:
        """Leave the logits alone while ``waiting()`` (the reply thinks): the format applies to
        the answer that follows, and the tokens before it are not part of the value."""
        self._waiting = waiting

    def __call__(self, tokens: Any, logits: Any) -> Any:
        from llguidance.numpy import fill_next_token_bitmask

        n = int(tokens.size)
        matcher = self._matcher
        if matcher is None:  # freed: the sequence has left the batch
            return logits
        if self._waiting is not None:
            if self._waiting():
                return logits
            self._waiting, self._seen = None, n  # the value starts with the next token
        if self._seen >= 0 and n > self._seen and not matcher.is_stopped():  # stopped: past an end token
            if not matcher.consume_tokens(tokens[self._seen :].tolist()):  # from here only the end tokens pass
                log.warning("format: the grammar refused a sampled token: %s", matcher.get_error().splitlines()[0])
        self._seen = n
        fill_next_token_bitmask(matcher, self._bits)
        return apply_bitmask(logits, self._bits)

    def free(self) -> None:
        """Drop the matcher (the sequence ended or was cancelled)."""
        self._matcher = None


_TABLES: dict[Any, Any] = {}


def apply_bitmask(logits: Any, bits: Any) -> Any:
    """``logits`` (1 x vocabulary) with -inf where the packed ``bits`` (little-endian int32
    words, llguidance's layout) are 0: one lookup of 8 additive values per mask byte."""
    import mlx.core as mx
    import numpy as np

    table = _TABLES.get(logits.dtype)
    if table is None:
        rows = [[0.0 if byte >> bit & 1 else -np.inf for bit in range(8)] for byte in range(256)]
        table = _TABLES[logits.dtype] = mx.array(rows, dtype=logits.dtype)
    width = logits.shape[-1]
    add = table[mx.array(bits.view(np.uint8).reshape(-1))].reshape(1, -1)[:, :width]
    return logits + add
