"""Per-request sampling: a llama.cpp sampler chain from SamplingOptions and ``format``."""

from __future__ import annotations

import ctypes
import json
import random
from typing import Any

import llama_cpp as lc
from llama_cpp.llama_grammar import JSON_GBNF, json_schema_to_gbnf

from vllama.errors import BadRequest
from vllama.types import Format, SamplingOptions
from vllama_llamacpp.native import Model, captured_errors
from vllama_llamacpp.tool_grammar import ToolGrammar


def grammar_for(fmt: Format) -> str | None:
    """The GBNF grammar that constrains output to ``fmt`` ("json" or a JSON schema)."""
    if fmt is None or fmt == "":
        return None
    if fmt == "json":
        return JSON_GBNF
    if isinstance(fmt, dict):
        try:
            return json_schema_to_gbnf(json.dumps(fmt))
        except Exception as e:  # the converter raises bare Exceptions and KeyErrors
            raise BadRequest(f"invalid JSON schema in format: {e}") from None
    raise BadRequest(f"invalid format: {fmt!r}")


def build_chain(model: Model, options: SamplingOptions, fmt: Format, tools: ToolGrammar | None = None) -> Any | None:
    """A new sampler chain for one sequence; the caller frees it with :func:`free_chain`.

    ``tools`` constrains tool calls (from the first token, or lazily from its triggers); it
    takes the place of ``format``. None for plain greedy decoding (no grammar, no penalties):
    the batch loop takes the argmax of the logits itself, which costs a fraction of a sampler call.
    """
    grammar = tools.gbnf if tools is not None else grammar_for(fmt)
    penalties = options.repeat_last_n != 0 and (options.repeat_penalty != 1.0 or options.frequency_penalty or options.presence_penalty)
    if options.temperature <= 0 and grammar is None and not penalties:
        return None
    chain = lc.llama_sampler_chain_init(lc.llama_sampler_chain_default_params())
    add = lc.llama_sampler_chain_add
    try:
        if grammar is not None:
            with captured_errors() as errors:
                g = _grammar_sampler(model, grammar, tools.triggers if tools is not None else ())
            if not g:
                raise BadRequest(f"invalid format grammar: {''.join(errors).strip() or 'parse error'}")
            add(chain, g)
        if penalties:
            last_n = options.repeat_last_n if options.repeat_last_n > 0 else -1
            add(
                chain,
                lc.llama_sampler_init_penalties(
                    model.n_vocab,
                    last_n,
                    options.repeat_penalty,
                    options.frequency_penalty,
                    options.presence_penalty,
                ),
            )
        if options.temperature <= 0:
            add(chain, lc.llama_sampler_init_greedy())
            return chain
        if options.top_k > 0:
            add(chain, lc.llama_sampler_init_top_k(options.top_k))
        if 0 < options.typical_p < 1:
            add(chain, lc.llama_sampler_init_typical(options.typical_p, 1))
        if 0 < options.top_p < 1:
            add(chain, lc.llama_sampler_init_top_p(options.top_p, 1))
        if options.min_p > 0:
            add(chain, lc.llama_sampler_init_min_p(options.min_p, 1))
        add(chain, lc.llama_sampler_init_temp(options.temperature))
        seed = options.seed if options.seed is not None and options.seed >= 0 else random.getrandbits(32)
        add(chain, lc.llama_sampler_init_dist(seed & 0xFFFFFFFF))
    except BaseException:
        free_chain(chain)
        raise
    return chain


def _grammar_sampler(model: Model, grammar: str, triggers: tuple[str, ...]) -> Any:
    """A grammar sampler; lazy (free until a trigger pattern matches) when there are triggers."""
    if not triggers:
        return lc.llama_sampler_init_grammar(model.vocab, grammar.encode(), b"root")
    patterns = (ctypes.c_char_p * len(triggers))(*(t.encode() for t in triggers))
    no_tokens = (lc.llama_token * 1)()
    return lc.llama_sampler_init_grammar_lazy_patterns(model.vocab, grammar.encode(), b"root", patterns, len(triggers), no_tokens, 0)


def free_chain(chain: Any | None) -> None:
    """Free a chain and the samplers it owns."""
    if chain is not None:
        lc.llama_sampler_free(chain)
