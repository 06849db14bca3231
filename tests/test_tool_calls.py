"""Tool calls parsed out of streamed text (the core's shared parser), and through the server."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vllama.testing.capabilities import mismatches
from vllama.testing.server import ServerProcess, create_model, wait_for
from vllama.tool_calls import FORMATS, ToolCallParser, detect_format

NAMES = ("get_weather", "get_time")
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
arguments = st.dictionaries(st.text(min_size=1, max_size=6), json_values, max_size=3)
calls = st.lists(st.tuples(st.sampled_from(NAMES), arguments), min_size=1, max_size=3)


def run(fmt: str, text: str, cuts: list[int], names: tuple[str, ...] = NAMES) -> tuple[str, list[tuple[str, dict]]]:
    parser = ToolCallParser(fmt, names)
    out, found = [], []
    for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True):
        t, c = parser.feed(text[a:b])
        out.append(t)
        found += c
    t, c = parser.flush()
    out.append(t)
    found += c
    assert [c.function.index for c in found] == list(range(len(found)))
    return "".join(out), [(c.function.name, c.function.arguments) for c in found]


def render(fmt: str, items: list[tuple[str, dict]]) -> str:
    key = "parameters" if fmt == "llama3" else "arguments"
    objs = [json.dumps({"name": n, key: a}) for n, a in items]
    if fmt == "hermes":
        return "\n".join(f"<tool_call>\n{o}\n</tool_call>" for o in objs)
    if fmt == "mistral":
        return "[TOOL_CALLS][" + ", ".join(objs) + "]"
    if fmt == "llama3":
        return "<|python_tag|>" + "; ".join(objs)
    return "\n".join(objs)


@given(st.sampled_from(FORMATS), calls, st.data())
def test_calls_in_each_format_parse_whatever_the_chunking(fmt: str, items: list, data: st.DataObject) -> None:
    text = render(fmt, items)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(text)), max_size=6)))
    assert run(fmt, text, cuts) == ("", items)


@given(st.sampled_from(FORMATS), calls, st.data())
def test_bare_json_calls_parse_in_every_format(fmt: str, items: list, data: st.DataObject) -> None:
    text = " " + "\n".join(json.dumps({"name": n, "arguments": a}) for n, a in items)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(text)), max_size=6)))
    assert run(fmt, text, cuts) == ("", items)


@given(st.sampled_from(FORMATS), st.text(max_size=60), st.data())
def test_text_that_is_not_a_call_comes_back_unchanged(fmt: str, text: str, data: st.DataObject) -> None:
    cuts = sorted(data.draw(st.lists(st.integers(0, len(text)), max_size=6)))
    out, found = run(fmt, text, cuts)
    if not found:
        assert out == text


@pytest.mark.parametrize(
    "text",
    [
        '{"name": "unknown_tool", "arguments": {}}',  # a name that was not offered
        '<tool_call>{"name": "get_weather", "arguments": </tool_call>',  # does not parse
        'Use {"name": "get_weather", "arguments": {}} like this',  # JSON after prose
        '{"name": "get_weather", "arguments": "not json"}',
    ],
)
def test_what_only_looks_like_a_call_stays_text(text: str) -> None:
    assert run("hermes", text, []) == (text, [])


@given(st.sampled_from(FORMATS), calls, st.sampled_from(["```json\n", "```\n", "  ```json \n"]), st.data())
def test_a_reply_that_is_only_a_fenced_call_is_a_call(fmt: str, items: list, fence: str, data: st.DataObject) -> None:
    text = fence + json.dumps([{"name": n, "arguments": a} for n, a in items], indent=2) + "\n```\n"
    cuts = sorted(data.draw(st.lists(st.integers(0, len(text)), max_size=6)))
    assert run(fmt, text, cuts) == ("", items)


@pytest.mark.parametrize(
    "text",
    [
        "```python\nprint({'name': 'get_weather'})\n```",  # another language
        '```json\n{"name": "unknown_tool", "arguments": {}}\n```',  # a name that was not offered
        '```json\n{"name": "get_weather", "arguments": {}}\n```\nThen it is sunny.',  # more after the fence
        "`` not a fence",
    ],
)
def test_fenced_text_that_is_not_only_a_call_stays_text(text: str) -> None:
    assert run("hermes", text, [1, 4, 9]) == (text, [])


def test_text_around_a_marked_call_is_kept() -> None:
    text = 'Let me check. <tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call> Done.'
    assert run("hermes", text, [5, 20]) == ("Let me check.  Done.", [("get_weather", {"city": "Paris"})])


def test_only_the_first_call_without_parallel_calls() -> None:
    parser = ToolCallParser("json", NAMES, parallel=False)
    parser.feed('{"name": "get_time", "arguments": {}} {"name": "get_weather", "arguments": {}}')
    assert [c.function.name for c in parser.flush()[1]] == ["get_time"]


@pytest.mark.parametrize(
    ("template", "fmt"),
    [
        ("{% if tools %}<tool_call>{% endif %}", "hermes"),
        ("{{ '[TOOL_CALLS]' }}{% if tools %}{% endif %}", "mistral"),
        ("{% if tools %}<|python_tag|>{% endif %}", "llama3"),
        ("{% for tool in tools %}{{ tool }}{% endfor %}", "json"),
        ("{% for m in messages %}{{ m.content }}{% endfor %}", None),
    ],
)
def test_format_is_detected_from_the_chat_template(template: str, fmt: str | None) -> None:
    assert detect_format(template) == fmt


# -- through the server ---------------------------------------------------------------

WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
CALL_TEXT = '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>'


@pytest.fixture(scope="module")
def models(echo_server: ServerProcess, tiny_gguf: Path) -> ServerProcess:
    create_model(echo_server.url, "texty", tiny_gguf, parameters={"backend": "echo-text", "tool_parser": "hermes"})
    create_model(echo_server.url, "plain", tiny_gguf, parameters={"backend": "echo-plain"})
    return echo_server


def test_the_core_parses_calls_out_of_a_text_engine(models: ServerProcess) -> None:
    body = {"model": "texty", "messages": [{"role": "user", "content": CALL_TEXT}], "tools": [WEATHER]}
    lines = [json.loads(x) for x in httpx.post(models.url + "/api/chat", json=body).text.splitlines()]
    got = [c for line in lines for c in line["message"].get("tool_calls", [])]
    assert got == [{"id": got[0]["id"], "function": {"index": 0, "name": "get_weather", "arguments": {"city": "Paris"}}}]
    assert "".join(line["message"]["content"] for line in lines) == ""
    v1 = httpx.post(models.url + "/v1/chat/completions", json={**body, "stream": False}).json()
    assert v1["choices"][0]["finish_reason"] == "tool_calls"
    assert json.loads(v1["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]) == {"city": "Paris"}


def test_without_tools_the_same_text_is_text(models: ServerProcess) -> None:
    body = {"model": "texty", "messages": [{"role": "user", "content": CALL_TEXT}], "stream": False}
    assert httpx.post(models.url + "/api/chat", json=body).json()["message"]["content"] == CALL_TEXT


def test_tool_choice_none_offers_no_tools(models: ServerProcess) -> None:
    body = {"model": "texty", "messages": [{"role": "user", "content": CALL_TEXT}], "tools": [WEATHER], "tool_choice": "none"}
    reply = httpx.post(models.url + "/v1/chat/completions", json=body).json()["choices"][0]
    assert reply["finish_reason"] == "stop" and reply["message"]["content"] == CALL_TEXT


def test_show_lists_only_what_the_serving_backend_can_do(models: ServerProcess) -> None:
    full = httpx.post(models.url + "/api/show", json={"model": "texty"}).json()["capabilities"]
    plain = httpx.post(models.url + "/api/show", json={"model": "plain"}).json()["capabilities"]
    assert full == ["completion", "tools", "thinking"] and plain == ["completion"]
    tags = {m["name"]: m["capabilities"] for m in httpx.get(models.url + "/api/tags").json()["models"]}
    assert tags["plain:latest"] == ["completion"] and tags["texty:latest"] == full


@pytest.mark.parametrize("name", ["texty", "plain"])
def test_every_capability_listed_is_accepted_and_no_other(models: ServerProcess, name: str) -> None:
    assert mismatches(models.url, name) == []
    httpx.post(models.url + "/api/generate", json={"model": name, "keep_alive": 0})  # unloaded, as the other tests expect
    assert wait_for(lambda: not httpx.get(models.url + "/api/ps").json()["models"])


@pytest.mark.parametrize(
    ("route", "extra", "error"),
    [
        ("/api/chat", {"tools": [WEATHER]}, "does not support tools with the echo-plain backend"),
        ("/api/chat", {"think": True}, "does not support thinking with the echo-plain backend"),
        ("/api/chat", {"format": "json"}, "does not support structured output (format) with the echo-plain backend"),
        ("/v1/chat/completions", {"tools": [WEATHER]}, "does not support tools with the echo-plain backend"),
    ],
)
def test_what_the_backend_lacks_is_refused_before_any_load(models: ServerProcess, route: str, extra: dict, error: str) -> None:
    body = {"model": "plain", "messages": [{"role": "user", "content": "hi"}], **extra}
    response = httpx.post(models.url + route, json=body)
    assert response.status_code == 400 and error in response.text
    assert "plain:latest" not in [m["name"] for m in httpx.get(models.url + "/api/ps").json()["models"]]


@pytest.mark.parametrize(
    ("backend", "parser", "status"),
    [
        ("echo", "echo", 200),  # a parser of the backend's own library
        ("echo", "hermes", 200),  # one of the core's
        ("echo-text", "echo", 400),  # the core parses for this backend: only its formats
        ("echo", "pythonic", 400),  # nobody's
    ],
)
def test_a_named_tool_parser_is_the_cores_or_the_backends(
    echo_server: ServerProcess, tiny_gguf: Path, backend: str, parser: str, status: int
) -> None:
    name = f"named-{backend}-{parser}"
    create_model(echo_server.url, name, tiny_gguf, parameters={"backend": backend, "tool_parser": parser})
    body = {"model": name, "messages": [{"role": "user", "content": "hi"}], "tools": [WEATHER], "stream": False}
    response = httpx.post(echo_server.url + "/api/chat", json=body)
    assert response.status_code == status, response.text
    if status == 400:
        assert f"invalid tool_parser '{parser}'" in response.json()["error"]
        assert f"{name}:latest" not in [m["name"] for m in httpx.get(echo_server.url + "/api/ps").json()["models"]]
