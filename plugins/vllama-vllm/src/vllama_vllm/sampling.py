"""Ollama's options, ``format`` and ``logprobs`` as vLLM SamplingParams."""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

from vllama.chat_inputs import template_tools
from vllama.errors import BadRequest, Unsupported
from vllama.types import Format, SamplingOptions, Tool


def sampling_kwargs(
    options: SamplingOptions,
    *,
    prompt_tokens: int,
    max_model_len: int,
    format: Format = None,
    top_logprobs: int | None = None,
    end_tokens: Collection[int] = (),
) -> dict[str, Any]:
    """SamplingParams fields for one request (``output_kind`` and ``structured_outputs`` are
    filled in by :func:`sampling_params`); ``end_tokens`` end it too (a middle's), unless
    ``ignore_eos``.

    ``num_predict`` -1 and -2 both run to the end of the context; Ollama's ``repeat_penalty``
    is vLLM's ``repetition_penalty``, which covers the whole context (``repeat_last_n`` has
    no vLLM equivalent). ``typical_p`` has none either: asking for it is a 400.
    """
    if options.typical_p != 1.0:
        raise Unsupported("typical_p is not supported by the vLLM engine")
    room = max_model_len - prompt_tokens
    max_tokens = room if options.num_predict < 0 else min(options.num_predict, room)
    kwargs: dict[str, Any] = {
        "temperature": max(0.0, options.temperature),
        "top_k": max(0, options.top_k),
        "top_p": options.top_p if 0 < options.top_p <= 1 else 1.0,
        "min_p": max(0.0, options.min_p),
        "seed": options.seed,
        "max_tokens": max_tokens,
        "stop": list(options.stop) or None,
        "repetition_penalty": options.repeat_penalty if options.repeat_penalty > 0 else 1.0,
        "presence_penalty": options.presence_penalty,
        "frequency_penalty": options.frequency_penalty,
        "ignore_eos": options.ignore_eos,
        "stop_token_ids": None if options.ignore_eos else sorted(end_tokens) or None,
    }
    if top_logprobs is not None:
        kwargs["logprobs"] = top_logprobs
    if format is not None:
        kwargs["structured_outputs"] = {"json_object": True} if format == "json" else {"json": format}
    return kwargs


def sampling_params(**kwargs: Any) -> Any:
    """A streaming (delta) vllm.SamplingParams; BadRequest when vLLM rejects a value."""
    from vllm.sampling_params import RequestOutputKind, SamplingParams, StructuredOutputsParams

    try:
        from vllm.exceptions import VLLMClientError as Rejected
    except ImportError:  # vLLM releases before it raised ValueError
        Rejected = ValueError
    structured = kwargs.pop("structured_outputs", None)
    try:
        return SamplingParams(
            **kwargs,
            structured_outputs=StructuredOutputsParams(**structured) if structured else None,
            output_kind=RequestOutputKind.DELTA,
        )
    except (ValueError, Rejected) as e:
        raise BadRequest(str(e)) from None


#: Whitespace characters a JSON answer may hold in one run (llama.cpp's JSON grammars allow a
#: newline and 20 more).
MAX_WHITESPACE = 21


def short_whitespace(structured: dict[str, Any]) -> dict[str, Any]:
    """``structured_outputs`` for JSON (a schema, or any object) as an xgrammar grammar whose
    whitespace runs are short: after its thinking a small model held to JSON otherwise fills
    the answer with spaces until its token limit."""
    import xgrammar

    schema = structured["json"] if "json" in structured else {"type": "object"}
    return {"grammar": str(xgrammar.Grammar.from_json_schema(json.dumps(schema), max_whitespace_cnt=MAX_WHITESPACE))}


def required_calls_schema(tools: list[Tool], *, parallel: bool) -> dict[str, Any]:
    """vLLM's JSON schema for ``tool_choice: "required"``: a list of ``{"name", "parameters"}``
    objects, each a call of one of ``tools``, at most one without parallel calls."""
    from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionToolsParam
    from vllm.tool_parsers.utils import get_json_schema_from_tools

    specs = [ChatCompletionToolsParam.model_validate(spec) for spec in template_tools(tools) or []]
    schema = get_json_schema_from_tools("required", specs, parallel_tool_calls=parallel)
    if not isinstance(schema, dict):
        raise Unsupported("vLLM gave no schema for the required tool call")
    return schema
