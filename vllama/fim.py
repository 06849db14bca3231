"""Fill-in-the-middle: the token families code models are trained with, found in a vocabulary,
and the prompt they make.

A request with a ``suffix`` asks the model for the text between ``prompt`` and ``suffix``. As in
Ollama's FIM templates, the prompt is the prefix and the suffix between the family's tokens
(``<|fim_prefix|>`` prefix ``<|fim_suffix|>`` suffix ``<|fim_middle|>`` for Qwen), and the
model writes the middle until one of the family's end tokens.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from vllama.types import ChatRequest, GenerateRequest


@dataclass(frozen=True)
class Family:
    """One family's token texts. ``middle`` is "" where the family has none (the model
    writes the middle right after the last part); ``suffix_first`` puts the suffix before
    the prefix (SPM order); ``ends`` are the tokens that end a middle, where present."""

    name: str
    prefix: str
    suffix: str
    middle: str = ""
    suffix_first: bool = False
    ends: tuple[str, ...] = ()

    @property
    def parts(self) -> tuple[str, ...]:
        return tuple(t for t in (self.prefix, self.suffix, self.middle) if t)


#: The families, tried in order: the first whose prefix, suffix and middle tokens are all in
#: the vocabulary wins. A family's own tokens end a middle too.
FAMILIES = (
    # Qwen2.5-Coder, Qwen3-Coder, CodeGemma
    Family(
        "qwen",
        "<|fim_prefix|>",
        "<|fim_suffix|>",
        "<|fim_middle|>",
        ends=("<|fim_pad|>", "<|repo_name|>", "<|file_sep|>", "<|file_separator|>", "<|endoftext|>"),
    ),
    # StarCoder, StarCoder2, Granite Code
    Family(
        "starcoder",
        "<fim_prefix>",
        "<fim_suffix>",
        "<fim_middle>",
        ends=("<fim_pad>", "<file_sep>", "<reponame>", "<filename>", "<|endoftext|>"),
    ),
    Family("santacoder", "<fim-prefix>", "<fim-suffix>", "<fim-middle>", ends=("<fim-pad>", "<|endoftext|>")),
    Family("deepseek", "<｜fim▁begin｜>", "<｜fim▁hole｜>", "<｜fim▁end｜>", ends=("<｜end▁of▁sentence｜>", "<|EOT|>")),
    Family("codellama", "▁<PRE>", "▁<SUF>", "▁<MID>", ends=("▁<EOT>",)),
    Family("codellama-plain", "<PRE>", "<SUF>", "<MID>", ends=("<EOT>",)),
    Family("glm", "<|code_prefix|>", "<|code_suffix|>", "<|code_middle|>", ends=("<|endoftext|>",)),
    # Codestral: [SUFFIX] suffix [PREFIX] prefix, and the model goes on from the prefix
    Family("codestral", "[PREFIX]", "[SUFFIX]", suffix_first=True, ends=("</s>",)),
)

#: Every token text a family names: all a vocabulary scan has to look for.
TOKEN_TEXTS = frozenset(t for f in FAMILIES for t in (*f.parts, *f.ends))

#: GGUF keys that name FIM token ids (and their older names), as llama.cpp reads them.
_GGUF_KEYS = (
    ("tokenizer.ggml.fim_pre_token_id", "tokenizer.ggml.fim_suf_token_id", "tokenizer.ggml.fim_mid_token_id"),
    ("tokenizer.ggml.prefix_token_id", "tokenizer.ggml.suffix_token_id", "tokenizer.ggml.middle_token_id"),
)


@dataclass(frozen=True)
class FimTokens:
    """A model's FIM token ids and the layout of its prompt."""

    prefix: int
    suffix: int
    middle: int | None = None
    suffix_first: bool = False
    #: Tokens that end the middle (besides the model's end-of-generation tokens).
    ends: frozenset[int] = frozenset()

    def layout(self, prefix: list[int], suffix: list[int]) -> list[int]:
        """The FIM prompt around the tokens of ``prefix`` and ``suffix``."""
        parts = [self.suffix, *suffix, self.prefix, *prefix] if self.suffix_first else [self.prefix, *prefix, self.suffix, *suffix]
        return parts if self.middle is None else [*parts, self.middle]

    def with_ends(self, other: FimTokens | None) -> FimTokens:
        """These tokens, ending also where ``other`` (the family found by text) ends."""
        if other is None:
            return self
        return FimTokens(self.prefix, self.suffix, self.middle, self.suffix_first, self.ends | other.ends)


def find(vocab: Mapping[str, int]) -> FimTokens | None:
    """The FIM tokens of the first family whose tokens are all in ``vocab`` (token text to
    id), or None: the model was not trained to fill in the middle."""
    for family in FAMILIES:
        if all(t in vocab for t in family.parts):
            ends = {vocab[t] for t in (*family.parts, *family.ends) if t in vocab}
            return FimTokens(
                vocab[family.prefix],
                vocab[family.suffix],
                vocab[family.middle] if family.middle else None,
                family.suffix_first,
                frozenset(ends),
            )
    return None


def declared(metadata: Mapping[str, Any]) -> FimTokens | None:
    """The FIM tokens a GGUF file's metadata names (prefix, suffix and middle), or None."""
    for keys in _GGUF_KEYS:
        ids = [i for i in (metadata.get(k) for k in keys) if isinstance(i, int) and not isinstance(i, bool) and i >= 0]
        if len(ids) == len(keys):
            return FimTokens(ids[0], ids[1], ids[2])
    return None


def hf_bos(tokenizer: Any) -> list[int]:
    """The tokens a Hugging Face tokenizer puts before a text (its BOS where it adds one)."""
    plain = list(tokenizer.encode("a", add_special_tokens=False))
    marked = list(tokenizer.encode("a", add_special_tokens=True))
    for start in range(len(marked) - len(plain) + 1):
        if marked[start : start + len(plain)] == plain:
            return marked[:start]
    return []


def wanted(request: GenerateRequest) -> bool:
    """Whether ``request`` asks for a middle: a suffix, not raw (as Ollama, a raw prompt is
    sent as it is and its suffix unused)."""
    return bool(request.suffix) and not request.raw


def ends(tokens: FimTokens | None, request: GenerateRequest | ChatRequest) -> frozenset[int]:
    """The tokens that end the reply to ``request`` besides the engine's end of text: a
    middle's, for a FIM request, and for a raw prompt, which editor plugins (Continue among
    them) build with the FIM tokens themselves."""
    if tokens is None or not isinstance(request, GenerateRequest) or not (wanted(request) or request.raw):
        return frozenset()
    return tokens.ends


def prompt(tokens: FimTokens, request: GenerateRequest, encode: Callable[[str], list[int]], *, bos: list[int]) -> list[int]:
    """The request's FIM prompt: its ``context`` tokens (else ``bos``, the engine's start of
    text), then prefix and suffix in the family's layout, each tokenized by ``encode``
    without special tokens. As in Ollama, the system prompt has no place in it."""
    head = list(request.context) if request.context else list(bos)
    return head + tokens.layout(encode(request.prompt), encode(request.suffix))
