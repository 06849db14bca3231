"""Ollama's wire structs: lenient request decoding, response encoding, round trips."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vllama.server.lenient import unknown_fields
from vllama.server.ollama_wire import (
    ChatBody,
    ChatChunk,
    ChatChunkMessage,
    CopyBody,
    CreateBody,
    DeleteBody,
    EmbedBody,
    EmbeddingsBody,
    GenerateBody,
    GenerateChunk,
    ProgressResponse,
    PullBody,
    ShowBody,
    ShowResponse,
    WireMessage,
    WireToolCall,
    WireToolCallFunction,
)

decode = msgspec.json.decode
encode = msgspec.json.encode

REQUESTS = [GenerateBody, ChatBody, EmbedBody, EmbeddingsBody, ShowBody, CopyBody, DeleteBody, PullBody, CreateBody]


@pytest.mark.parametrize("body", REQUESTS, ids=lambda t: t.__name__)
def test_unknown_fields_are_ignored_and_found(body: type) -> None:
    assert decode(b'{"bogus": 1}', type=body) == body()
    assert unknown_fields({"bogus": 1}, body) == ["bogus"]


@pytest.mark.parametrize("body", REQUESTS, ids=lambda t: t.__name__)
def test_empty_object_decodes(body: type) -> None:
    assert decode(b"{}", type=body) == body()


def test_unknown_fields_in_messages_are_ignored_and_found_once() -> None:
    raw = b'{"model":"m","messages":[{"role":"user","content":"hi","colour":"red"},{"role":"user","colour":1}]}'
    assert decode(raw, type=ChatBody).messages == [WireMessage(role="user", content="hi"), WireMessage(role="user")]
    assert unknown_fields(decode(raw), ChatBody) == ["messages[].colour"]
    call = {"function": {"name": "f", "extra": 1}, "type": "function"}
    found = unknown_fields({"messages": [{"role": "assistant", "tool_calls": [call]}]}, CreateBody)
    assert found == ["messages[].tool_calls[].function.extra", "messages[].tool_calls[].type"]


def test_known_fields_and_wrong_shapes_are_not_unknown() -> None:
    body = {"from": "x", "_debug_render_only": True, "messages": "hi", "parameters": {"foo": 1}}
    assert unknown_fields(body, CreateBody) == ["_debug_render_only"]
    assert unknown_fields({"from": "x", "messages": [5, None]}, CreateBody) == []
    assert unknown_fields([1, 2], ChatBody) == [] and unknown_fields(None, ChatBody) == []


def test_wrong_types_are_rejected() -> None:
    with pytest.raises(msgspec.ValidationError, match=r"Expected `str`.*\$.prompt"):
        decode(b'{"prompt": 5}', type=GenerateBody)
    with pytest.raises(msgspec.ValidationError):
        decode(b'{"stream": "yes"}', type=GenerateBody)
    with pytest.raises(msgspec.ValidationError):
        decode(b'{"messages": [{"content": "no role"}]}', type=ChatBody)


def test_generate_body_fields() -> None:
    body = decode(
        b'{"model":"llama3.2","prompt":"Why?","system":"s","template":"t","context":[1,2],"stream":false,'
        b'"raw":true,"format":"json","keep_alive":"5m","images":["aGk="],"options":{"temperature":0.1},'
        b'"think":"high","truncate":false,"shift":true,"logprobs":true,"top_logprobs":3,"suffix":"x"}',
        type=GenerateBody,
    )
    assert (body.model, body.prompt, body.system, body.template, body.context) == ("llama3.2", "Why?", "s", "t", [1, 2])
    assert (body.stream, body.raw, body.format, body.keep_alive) == (False, True, "json", "5m")
    assert (body.images, body.options, body.think) == (["aGk="], {"temperature": 0.1}, "high")
    assert (body.truncate, body.shift, body.logprobs, body.top_logprobs, body.suffix) == (False, True, True, 3, "x")


@pytest.mark.parametrize(("raw", "value"), [(b"0", 0), (b"-1", -1), (b"1.5", 1.5), (b'"10m"', "10m"), (b"null", None)])
def test_keep_alive_forms(raw: bytes, value: object) -> None:
    assert decode(b'{"keep_alive":' + raw + b"}", type=GenerateBody).keep_alive == value
    assert decode(b'{"keep_alive":' + raw + b"}", type=ChatBody).keep_alive == value


def test_format_schema_and_think_bool() -> None:
    body = decode(b'{"format":{"type":"object"},"think":true}', type=ChatBody)
    assert body.format == {"type": "object"} and body.think is True


def test_create_body_from_alias() -> None:
    body = decode(b'{"model":"mario","from":"llama3.2","system":"You are Mario."}', type=CreateBody)
    assert body.from_ == "llama3.2"
    assert body.system == "You are Mario."
    assert b'"from":"llama3.2"' in encode(body)
    assert decode(b'{"from_":"llama3.2"}', type=CreateBody).from_ == ""
    assert unknown_fields({"from_": "llama3.2"}, CreateBody) == ["from_"]


def test_create_body_files_license_and_parameters() -> None:
    body = decode(
        b'{"model":"m","files":{"m.gguf":"sha256:' + b"0" * 64 + b'"},"license":["a","b"],'
        b'"parameters":{"stop":["x"],"temperature":0.2},"messages":[{"role":"user","content":"hi"}],"quantize":"q4_K_M"}',
        type=CreateBody,
    )
    assert body.files == {"m.gguf": "sha256:" + "0" * 64}
    assert body.license == ["a", "b"]
    assert body.parameters == {"stop": ["x"], "temperature": 0.2}
    assert body.messages == [WireMessage(role="user", content="hi")]
    assert body.quantize == "q4_K_M"
    assert decode(b'{"license":"MIT"}', type=CreateBody).license == "MIT"


@pytest.mark.parametrize("body", [GenerateBody, ChatBody], ids=lambda t: t.__name__)
def test_debug_render_only_accepted(body: type) -> None:
    decoded = decode(b'{"model":"m","_debug_render_only":true}', type=body)
    assert decoded._debug_render_only is True
    assert decode(b'{"model":"m"}', type=body)._debug_render_only is False
    assert b'"_debug_render_only":true' in encode(decoded)


def test_embed_input_forms() -> None:
    assert decode(b'{"input":"one"}', type=EmbedBody).input == "one"
    assert decode(b'{"input":["a","b"]}', type=EmbedBody).input == ["a", "b"]
    with pytest.raises(msgspec.ValidationError):
        decode(b'{"input":5}', type=EmbedBody)


# -- responses --------------------------------------------------------------------------------


def test_final_generate_chunk_always_has_response_and_done() -> None:
    chunk = GenerateChunk(model="m", created_at="2024-01-01T00:00:00Z", response="", done=False)
    assert decode(encode(chunk)) == {"model": "m", "created_at": "2024-01-01T00:00:00Z", "response": "", "done": False}


def test_done_generate_chunk() -> None:
    chunk = GenerateChunk(
        model="m",
        created_at="t",
        response="",
        done=True,
        done_reason="stop",
        context=[1, 2],
        total_duration=5,
        load_duration=0,
        eval_count=3,
    )
    out = decode(encode(chunk))
    assert out == {
        "model": "m",
        "created_at": "t",
        "response": "",
        "done": True,
        "done_reason": "stop",
        "context": [1, 2],
        "total_duration": 5,
        "load_duration": 0,
        "eval_count": 3,
    }
    for omitted in ("thinking", "tool_calls", "logprobs", "prompt_eval_count", "eval_duration"):
        assert omitted not in out


def test_chat_chunk_message_always_has_role_and_content() -> None:
    chunk = ChatChunk(model="m", created_at="t", message=ChatChunkMessage(role="assistant", content=""), done=False)
    assert decode(encode(chunk)) == {
        "model": "m",
        "created_at": "t",
        "message": {"role": "assistant", "content": ""},
        "done": False,
    }
    call = WireToolCall(function=WireToolCallFunction(name="f", arguments={"a": 1}, index=0))
    msg = ChatChunkMessage(role="assistant", content="", tool_calls=[call])
    assert decode(encode(msg)) == {
        "role": "assistant",
        "content": "",
        "tool_calls": [{"function": {"name": "f", "arguments": {"a": 1}, "index": 0}}],
    }


def test_tool_call_function_with_arguments() -> None:
    out = decode(encode(WireToolCallFunction(name="f", arguments={"city": "Paris"}, index=1)))
    assert out == {"index": 1, "name": "f", "arguments": {"city": "Paris"}}


def test_tool_call_without_arguments_still_sends_arguments() -> None:
    # Regression: an empty `arguments` was omitted; Ollama always sends it and the official
    # ollama-python client requires it.
    msg = ChatChunkMessage(role="assistant", content="", tool_calls=[WireToolCall(function=WireToolCallFunction(name="now"))])
    out = decode(encode(msg))
    assert out["tool_calls"][0]["function"] == {"index": 0, "name": "now", "arguments": {}}


def test_tool_call_parses_with_the_official_client() -> None:
    ollama = pytest.importorskip("ollama")
    call = WireToolCall(function=WireToolCallFunction(name="now"))
    chunk = ChatChunk(model="m", created_at="t", done=True, message=ChatChunkMessage(role="assistant", content="", tool_calls=[call]))
    response = ollama.ChatResponse.model_validate_json(encode(chunk))
    assert response.message.tool_calls[0].function.name == "now"
    assert response.message.tool_calls[0].function.arguments == {}


def test_progress_and_show_responses_omit_defaults() -> None:
    assert decode(encode(ProgressResponse(status="success"))) == {"status": "success"}
    assert decode(encode(ProgressResponse(status="pulling", digest="d", total=10, completed=5))) == {
        "status": "pulling",
        "digest": "d",
        "total": 10,
        "completed": 5,
    }
    out = decode(encode(ShowResponse(template="t")))
    assert out["template"] == "t" and "license" not in out and "messages" not in out


# -- round trips ------------------------------------------------------------------------------------

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=False, allow_infinity=False), st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=8,
)
opt = lambda s: st.one_of(st.none(), s)

generate_bodies = st.builds(
    GenerateBody,
    model=st.text(),
    prompt=st.text(),
    suffix=st.text(),
    system=opt(st.text()),
    template=opt(st.text()),
    context=opt(st.lists(st.integers(-(2**31), 2**31))),
    stream=opt(st.booleans()),
    raw=st.booleans(),
    format=st.one_of(st.none(), st.just("json"), st.text(), st.dictionaries(st.text(max_size=8), json_values, max_size=3)),
    keep_alive=st.one_of(
        st.none(),
        st.integers(-(2**31), 2**31),
        st.floats(allow_nan=False, allow_infinity=False),
        st.sampled_from(["5m", "0", "-1", "1h30m"]),
    ),
    images=opt(st.lists(st.text(alphabet="ABCDEFabcdef0123456789+/=", max_size=12), max_size=2)),
    options=opt(st.dictionaries(st.text(max_size=12), json_values, max_size=4)),
    think=st.one_of(st.none(), st.booleans(), st.sampled_from(["low", "medium", "high"])),
    truncate=opt(st.booleans()),
    shift=opt(st.booleans()),
    logprobs=st.booleans(),
    top_logprobs=st.integers(0, 20),
    _debug_render_only=st.booleans(),
)


@given(generate_bodies)
def test_generate_body_round_trips(body: GenerateBody) -> None:
    assert decode(encode(body), type=GenerateBody) == body


messages = st.builds(
    WireMessage,
    role=st.sampled_from(["system", "user", "assistant", "tool"]),
    content=st.text(),
    thinking=st.text(max_size=5),
    images=opt(st.lists(st.text(max_size=5), max_size=2)),
    tool_calls=opt(
        st.lists(
            st.builds(
                WireToolCall,
                function=st.builds(
                    WireToolCallFunction,
                    name=st.text(min_size=1),
                    arguments=st.dictionaries(st.text(max_size=5), json_values, max_size=2),
                    index=st.integers(0, 10),
                ),
                id=st.text(max_size=5),
            ),
            max_size=2,
        )
    ),
    tool_name=st.text(max_size=5),
)


@given(
    st.builds(
        ChatBody,
        model=st.text(),
        messages=opt(st.lists(messages, max_size=3)),
        stream=opt(st.booleans()),
        think=st.one_of(st.none(), st.booleans(), st.just("high")),
        top_logprobs=st.integers(0, 20),
    )
)
def test_chat_body_round_trips(body: ChatBody) -> None:
    assert decode(encode(body), type=ChatBody) == body


@given(
    st.builds(
        GenerateChunk,
        model=st.text(),
        created_at=st.text(),
        response=st.text(),
        done=st.booleans(),
        thinking=st.text(max_size=5),
        done_reason=st.sampled_from(["", "stop", "length", "load", "unload"]),
        context=opt(st.lists(st.integers(0, 2**31))),
        eval_count=st.integers(0, 10**6),
    )
)
def test_generate_chunk_always_carries_required_fields(chunk: GenerateChunk) -> None:
    out = decode(encode(chunk))
    assert out["response"] == chunk.response and out["done"] is chunk.done
    assert out["model"] == chunk.model and out["created_at"] == chunk.created_at
    assert ("thinking" in out) == bool(chunk.thinking)
    assert ("done_reason" in out) == bool(chunk.done_reason)
    assert ("context" in out) == (chunk.context is not None)
    assert ("eval_count" in out) == bool(chunk.eval_count)
    assert decode(encode(chunk), type=GenerateChunk) == chunk


def unknown_keys(body: type) -> st.SearchStrategy[str]:
    return st.text(max_size=12).filter(lambda k: k not in body.__struct_encode_fields__)


@given(
    st.dictionaries(unknown_keys(ChatBody), json_values, max_size=4),
    st.dictionaries(unknown_keys(WireMessage), json_values, max_size=3),
)
def test_unknown_fields_never_change_a_body(extra: dict[str, object], in_message: dict[str, object]) -> None:
    known = {"model": "m", "stream": False, "messages": [{"role": "user", "content": "hi"}]}
    raw = {**known, **extra, "messages": [{**known["messages"][0], **in_message}]}
    assert decode(encode(raw), type=ChatBody) == decode(encode(known), type=ChatBody)
    assert unknown_fields(raw, ChatBody) == [*(f"messages[].{k}" for k in in_message), *extra]
