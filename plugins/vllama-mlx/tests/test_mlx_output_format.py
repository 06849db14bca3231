"""``format`` as an mlx-lm logits processor (llguidance), on SmolLM2's real tokenizer, and each
sequence's matcher in the real engine."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlx.core as mx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vllama.errors import BadRequest
from vllama.types import ChatRequest, Done, Hardware, LoadSettings, Message, ModelRef, SamplingOptions
from vllama_mlx.backend import MlxBackend
from vllama_mlx.engine import MlxEngine
from vllama_mlx.output_format import FormatCompiler, FormatMask, apply_bitmask, closed
from vllama_mlx.sequence import Sequence

SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "population": {"type": "integer", "minimum": 0},
        "sights": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}}}},
    },
    "required": ["city", "population"],
}
PROMPT = [1, 9690, 198]


@pytest.fixture(scope="module")
def tokenizer(smollm2_dir: Path) -> Any:
    from mlx_lm.tokenizer_utils import load

    return load(smollm2_dir)


@pytest.fixture(scope="module")
def compiler(tokenizer: Any) -> FormatCompiler:
    return FormatCompiler(tokenizer, len(tokenizer))


def allowed(mask: FormatMask, tokens: list[int], width: int) -> set[int]:
    """The tokens the mask lets through after ``tokens`` (the prompt, then the reply so far)."""
    out = mask(mx.array(tokens), mx.zeros((1, width)))
    return set(np.nonzero(np.array(out[0]) == 0)[0].tolist())


def test_a_reply_that_matches_the_schema_passes_token_by_token_and_then_only_the_end_may_follow(
    compiler: FormatCompiler, tokenizer: Any
) -> None:
    reply = tokenizer.encode(json.dumps({"city": "Paris", "population": 2100000, "sights": [{"name": "Louvre"}]}), add_special_tokens=False)
    mask = compiler.mask(SCHEMA)
    for i, token in enumerate(reply):
        ok = allowed(mask, PROMPT + reply[:i], len(tokenizer))
        assert token in ok, tokenizer.decode(reply[: i + 1])
        assert not ok & set(tokenizer.eos_token_ids)  # nothing ends an unfinished value
    assert allowed(mask, PROMPT + reply, len(tokenizer)) == set(tokenizer.eos_token_ids)


def test_json_is_any_object(compiler: FormatCompiler, tokenizer: Any) -> None:
    first = allowed(compiler.mask("json"), PROMPT, len(tokenizer))
    (brace,) = tokenizer.encode("{", add_special_tokens=False)
    (bracket,) = tokenizer.encode("[", add_special_tokens=False)
    assert brace in first and bracket not in first
    assert not first & set(tokenizer.eos_token_ids)


def test_properties_not_asked_for_are_refused_as_ollama_does(compiler: FormatCompiler, tokenizer: Any) -> None:
    schema = {"type": "object", "properties": {"a": {"type": "boolean"}}, "required": ["a"]}
    reply = tokenizer.encode('{"a": true', add_special_tokens=False)
    mask = compiler.mask(schema)
    allowed(mask, PROMPT, len(tokenizer))
    after = allowed(mask, PROMPT + reply, len(tokenizer))
    (comma,) = tokenizer.encode(",", add_special_tokens=False)
    assert comma not in after and any("}" in tokenizer.decode([t]) for t in after)


def test_a_token_the_grammar_refuses_leaves_only_the_end(
    compiler: FormatCompiler, tokenizer: Any, caplog: pytest.LogCaptureFixture
) -> None:
    mask = compiler.mask(SCHEMA)
    allowed(mask, PROMPT, len(tokenizer))
    wrong = tokenizer.encode("hello", add_special_tokens=False)
    assert allowed(mask, PROMPT + wrong[:1], len(tokenizer)) == set(tokenizer.eos_token_ids)
    assert "the grammar refused a sampled token" in caplog.text


def test_after_the_end_token_the_mask_stays_quiet(compiler: FormatCompiler, tokenizer: Any, caplog: pytest.LogCaptureFixture) -> None:
    """mlx-lm calls a sequence's processors once more after it sampled the end token."""
    reply = tokenizer.encode('{"a": 1}', add_special_tokens=False)
    mask = compiler.mask("json")
    allowed(mask, PROMPT, len(tokenizer))
    allowed(mask, PROMPT + reply, len(tokenizer))
    end = sorted(tokenizer.eos_token_ids)[:1]
    assert allowed(mask, PROMPT + reply + end, len(tokenizer)) == set(tokenizer.eos_token_ids)
    allowed(mask, PROMPT + reply + end + end, len(tokenizer))
    assert "refused" not in caplog.text


def test_a_freed_mask_holds_nothing_and_changes_nothing(compiler: FormatCompiler, tokenizer: Any) -> None:
    mask = compiler.mask(SCHEMA)
    allowed(mask, PROMPT, len(tokenizer))
    mask.free()
    assert allowed(mask, PROMPT + [5], len(tokenizer)) == set(range(len(tokenizer)))


def test_a_wider_logits_row_than_the_vocabulary_masks_the_rest(tokenizer: Any) -> None:
    compiler = FormatCompiler(tokenizer, len(tokenizer) + 64)
    ok = allowed(compiler.mask("json"), PROMPT, len(tokenizer) + 64)
    assert ok and max(ok) < len(tokenizer)


@pytest.mark.parametrize(
    "schema, message",
    [
        ({"type": "frob"}, "Invalid type: frob"),
        ({"properties": {"a": {"$ref": "#/nowhere"}}}, "does not exist"),
        ({"type": "string", "pattern": "(("}, "regex parse error"),
        ({"type": "string", "minLength": "x"}, "minLength"),
    ],
)
def test_a_schema_llguidance_cannot_compile_is_a_bad_request(compiler: FormatCompiler, schema: dict, message: str) -> None:
    with pytest.raises(BadRequest, match="invalid JSON schema in format") as e:
        compiler.mask(schema)
    assert message in str(e.value)


def test_a_format_that_is_neither_json_nor_a_schema_is_a_bad_request(compiler: FormatCompiler) -> None:
    with pytest.raises(BadRequest, match="invalid format"):
        compiler.mask("yaml")  # type: ignore[arg-type]


# -- in the engine ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def engine(smollm2: ModelRef) -> Iterator[MlxEngine]:
    engine = asyncio.run(MlxBackend.load(smollm2, Hardware(), LoadSettings(num_ctx=512, parallel=2)))
    assert isinstance(engine, MlxEngine)
    yield engine
    asyncio.run(engine.close())


def made_sequences(engine: MlxEngine, monkeypatch: pytest.MonkeyPatch) -> dict[str, Sequence]:
    """The sequences the engine makes from here on (its own ``sequence``, recorded), by the
    JSON of their request's format."""
    made: dict[str, Sequence] = {}
    make = engine.sequence

    def sequence(prompt: list[int], request: Any) -> Sequence:
        seq = made[json.dumps(request.format)] = make(prompt, request)
        return seq

    monkeypatch.setattr(engine, "sequence", sequence)
    return made


def masks(seq: Sequence) -> list[FormatMask]:
    return [p for p in seq.processors if isinstance(p, FormatMask)]


async def until_idle(engine: MlxEngine) -> None:
    for _ in range(600):
        if engine.active_sequences == 0:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the sequences did not leave the batch")


def chat(fmt: Any, num_predict: int = 64) -> ChatRequest:
    question = [Message(role="user", content="What is the capital of France? Answer in JSON.")]
    return ChatRequest(messages=question, format=fmt, options=SamplingOptions(temperature=0.8, seed=5, num_predict=num_predict))


async def test_only_a_sequence_with_a_format_has_a_mask_and_each_its_own(engine: MlxEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    made = made_sequences(engine, monkeypatch)

    async def events(fmt: Any) -> list[Any]:
        return [e async for e in engine.chat(chat(fmt))]

    replies = await asyncio.gather(*(events(f) for f in (SCHEMA, None, "json")))
    with_schema, plain, any_object = (made[json.dumps(f)] for f in (SCHEMA, None, "json"))
    assert len(masks(with_schema)) == 1 and not masks(plain) and len(masks(any_object)) == 1
    assert masks(with_schema)[0] is not masks(any_object)[0]
    assert all(m._matcher is None for s in made.values() for m in masks(s))  # freed as each ended
    for events in (replies[0], replies[2]):
        assert isinstance(events[-1], Done) and events[-1].reason == "stop"
        json.loads("".join(getattr(e, "text", "") for e in events))


async def test_a_cancelled_sequence_frees_its_matcher(engine: MlxEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    made = made_sequences(engine, monkeypatch)
    stream = engine.chat(chat(SCHEMA, num_predict=200))
    await anext(stream)  # the first text: the sequence is in the batch
    (mask,) = masks(made[json.dumps(SCHEMA)])
    assert mask._matcher is not None
    await stream.aclose()  # the client went away
    await until_idle(engine)
    assert mask._matcher is None


# -- the bitmask on the logits ----------------------------------------------------------------


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 200), st.data())
def test_the_bitmask_sets_exactly_the_refused_tokens_to_minus_infinity(width: int, data: st.DataObject) -> None:
    words = data.draw(st.lists(st.integers(-(2**31), 2**31 - 1), min_size=(width + 31) // 32, max_size=(width + 31) // 32 + 2))
    bits = np.array([words], dtype=np.int32)
    logits = mx.array(np.arange(width, dtype=np.float32)[None, :])
    out = np.array(apply_bitmask(logits, bits))
    expected = np.unpackbits(bits.view(np.uint8), bitorder="little")[:width].astype(bool)
    assert out.shape == (1, width)
    assert np.array_equal(np.isinf(out[0]), ~expected)
    assert np.array_equal(out[0][expected], np.arange(width, dtype=np.float32)[expected])


# -- closing objects as Ollama's grammars do -------------------------------------------------

leaf = st.sampled_from([{"type": "string"}, {"type": "integer"}, {"const": {"properties": {"x": 1}}}, {"enum": [{"properties": {}}]}])
schemas = st.recursive(
    leaf,
    lambda inner: st.one_of(
        st.builds(lambda p: {"type": "object", "properties": p}, st.dictionaries(st.sampled_from(["a", "properties", "items"]), inner)),
        st.builds(
            lambda p, extra: {"properties": p, "additionalProperties": extra}, st.dictionaries(st.just("b"), inner), st.booleans() | inner
        ),
        st.builds(lambda i: {"type": "array", "items": i}, inner),
        st.builds(lambda xs: {"anyOf": xs}, st.lists(inner, max_size=3)),
        st.builds(lambda xs: {"allOf": xs}, st.lists(inner, max_size=3)),
        st.builds(lambda d: {"$defs": d}, st.dictionaries(st.just("d"), inner)),
    ),
    max_leaves=12,
)


def _walk(original: Any, result: Any) -> None:
    """``result`` is ``original`` with additionalProperties false added where it lists
    properties and says nothing of others, outside allOf branches and values."""
    if not isinstance(original, dict):
        assert result == original
        return
    added = isinstance(original.get("properties"), dict) and "additionalProperties" not in original
    assert set(result) == set(original) | ({"additionalProperties"} if added else set())
    if added:
        assert result["additionalProperties"] is False
    for key, value in original.items():
        if key in ("properties", "$defs"):
            for name in value:
                _walk(value[name], result[key][name])
        elif key in ("items", "additionalProperties"):
            _walk(value, result[key])
        elif key == "anyOf":
            for a, b in zip(value, result[key], strict=True):
                _walk(a, b)
        else:  # values and allOf branches stay as they were
            assert result[key] == value


@given(schemas)
def test_closed_adds_additional_properties_false_where_ollama_would_and_nowhere_else(schema: dict) -> None:
    snapshot = json.dumps(schema)
    result = closed(schema)
    assert json.dumps(schema) == snapshot  # the request's schema is not changed
    _walk(schema, result)
    assert closed(result) == result
