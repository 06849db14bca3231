"""The llama.cpp library seen through llama-cpp-python's ctypes API: logging, model and contexts.

Importing this module imports llama_cpp; only engine code does, when a model loads.
"""

from __future__ import annotations

import ctypes
import logging
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import llama_cpp as lc

from vllama.errors import EngineError

log = logging.getLogger("vllama.llamacpp")

#: ggml's log levels (none, debug, info, warn, error; 5 continues the previous line).
_GGML_LOG_LEVELS = {1: logging.DEBUG, 2: logging.INFO, 3: logging.WARNING, 4: logging.ERROR}
_GGML_LOG_CONT = 5
_LOG_PREFIX = re.compile(r"^[a-z_0-9]+: ")

_init_lock = threading.Lock()
_initialised = False
#: Lists collecting llama.cpp's error lines, one per open :func:`captured_errors` block.
_captures: list[list[str]] = []
_last_level = logging.DEBUG


@lc.llama_log_callback
def _on_log(level: int, text: bytes, _user_data: ctypes.c_void_p) -> None:
    """Route llama.cpp's log to Python logging (errors as errors, the rest as debug) and
    hand error lines to the open captures."""
    global _last_level
    lvl = _last_level if level == _GGML_LOG_CONT else _GGML_LOG_LEVELS.get(level, logging.DEBUG)
    _last_level = lvl
    message = text.decode("utf-8", errors="replace")
    if lvl >= logging.ERROR:
        for lines in tuple(_captures):
            lines.append(message)
        log.error("llama.cpp: %s", message.rstrip())
    elif log.isEnabledFor(logging.DEBUG):
        log.debug("llama.cpp: %s", message.rstrip())


def init() -> None:
    """Initialise the llama.cpp backend once per process and install the log router."""
    global _initialised
    with _init_lock:
        if not _initialised:
            lc.llama_log_set(_on_log, ctypes.c_void_p(0))
            lc.llama_backend_init()
            _initialised = True


@contextmanager
def captured_errors() -> Iterator[list[str]]:
    """Collect the error lines llama.cpp logs while the block runs."""
    lines: list[str] = []
    _captures.append(lines)
    try:
        yield lines
    finally:
        _captures.remove(lines)


def _error_message(lines: list[str]) -> str:
    """llama.cpp's first error line, without the name of the function that logged it."""
    for line in "".join(lines).splitlines():
        line = _LOG_PREFIX.sub("", line.strip())
        if line:
            return line
    return ""


class Model:
    """A loaded llama.cpp model and its vocabulary: tokenize and detokenize."""

    def __init__(self, path: str, name: str, *, n_gpu_layers: int) -> None:
        init()
        params = lc.llama_model_default_params()
        params.n_gpu_layers = n_gpu_layers
        with captured_errors() as errors:
            ptr = lc.llama_model_load_from_file(path.encode(), params)
        if not ptr:
            reason = _error_message(errors) or "llama.cpp could not read the file"
            raise EngineError(f"failed to load model {name}: {reason}")
        self.ptr = ptr
        self.name = name
        self.vocab = lc.llama_model_get_vocab(ptr)
        self.n_vocab: int = lc.llama_vocab_n_tokens(self.vocab)
        self.n_embd: int = lc.llama_model_n_embd(ptr)
        self.size: int = lc.llama_model_size(ptr)
        self.bos: int = lc.llama_vocab_bos(self.vocab)
        self.eos: int = lc.llama_vocab_eos(self.vocab)
        self.has_decoder: bool = lc.llama_model_has_decoder(ptr)
        self.can_trim_cache = not (lc.llama_model_is_recurrent(ptr) or lc.llama_model_is_hybrid(ptr))
        self._pieces: dict[int, bytes] = {}
        self._special_pieces: dict[int, bytes] = {}
        self._piece_buf = ctypes.create_string_buffer(256)

    def tokenize(self, text: str, *, add_special: bool = True, special: bool = True) -> list[int]:
        """Token ids of ``text``, with special tokens (``<|im_start|>``...) parsed unless ``special`` is false."""
        data = text.encode("utf-8")
        capacity = len(data) + 8
        arr = (lc.llama_token * capacity)()
        n = lc.llama_tokenize(self.vocab, data, len(data), arr, capacity, add_special, special)
        if n < 0:
            capacity = -n
            arr = (lc.llama_token * capacity)()
            n = lc.llama_tokenize(self.vocab, data, len(data), arr, capacity, add_special, special)
        tokens = list(arr[:n])
        if len(tokens) > 1 and tokens[0] == tokens[1] == self.bos:
            del tokens[0]  # a template that writes the BOS itself
        return tokens

    def piece(self, token: int, *, special: bool = False) -> bytes:
        """The bytes a token stands for; control tokens render as nothing unless ``special``
        (harmony replies mark their channels with them)."""
        pieces = self._special_pieces if special else self._pieces
        cached = pieces.get(token)
        if cached is None:
            buf = self._piece_buf
            n = lc.llama_token_to_piece(self.vocab, token, buf, len(buf), 0, special)
            if n < 0:
                buf = ctypes.create_string_buffer(-n)
                n = lc.llama_token_to_piece(self.vocab, token, buf, len(buf), 0, special)
            cached = pieces[token] = buf.raw[:n]
        return cached

    def special_text(self, token: int) -> str:
        """A token's text with special tokens rendered (for ``bos_token`` in templates)."""
        if token < 0:
            return ""
        buf = ctypes.create_string_buffer(256)
        n = lc.llama_token_to_piece(self.vocab, token, buf, len(buf), 0, True)
        return buf.raw[: max(n, 0)].decode("utf-8", errors="replace")

    def is_eog(self, token: int) -> bool:
        return bool(lc.llama_vocab_is_eog(self.vocab, token))

    def close(self) -> None:
        if self.ptr:
            lc.llama_model_free(self.ptr)
            self.ptr = None


def new_context(model: Model, **params: Any) -> Any:
    """Create a llama.cpp context on ``model``; ``params`` set llama_context_params fields."""
    cparams = lc.llama_context_default_params()
    for key, value in params.items():
        setattr(cparams, key, value)
    with captured_errors() as errors:
        ctx = lc.llama_init_from_model(model.ptr, cparams)
    if not ctx:
        reason = _error_message(errors) or "could not create a context"
        raise EngineError(f"failed to load model {model.name}: {reason}")
    return ctx
