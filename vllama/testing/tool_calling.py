"""The tool-calling suite: a full tool round trip over real HTTP with the official ``ollama``
and ``openai`` clients and LangChain, run by every backend that declares ``tools``, on
Qwen2.5-Coder-0.5B-Instruct at temperature 0.

Subclass :class:`ToolCalling` in a test module of your backend package and override the
``server`` fixture: a running ``vllama serve`` (:class:`vllama.testing.server.ServerProcess`)
on which the model :data:`MODEL` has been created::

    class TestMyBackendTools(ToolCalling):
        @pytest.fixture(scope="class")
        def server(self, tmp_path_factory):
            with ServerProcess(tmp_path_factory.mktemp("tools"), {"VLLAMA_PLUGINS": "mine"}) as server:
                ollama.Client(host=server.url).create(model=MODEL, from_=...)
                yield server
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import ollama
import openai
import pytest

from vllama.testing.capabilities import mismatches
from vllama.testing.served import TIMEOUT, ServedSuite
from vllama.testing.server import ServerProcess

MODEL = "qwen"
WEATHER: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
TIME: Any = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "Get the current time in a time zone",
        "parameters": {"type": "object", "properties": {"zone": {"type": "string"}}, "required": ["zone"]},
    },
}
ASK: Any = {"role": "user", "content": "What is the weather in Paris?"}
#: With the tools not offered again and this system prompt, the 0.5B model answers from the result.
ANSWER_SYSTEM = "You are a helpful assistant. When a tool result arrives, answer the user in one plain sentence."
RESULT = json.dumps({"city": "Paris", "temperature_celsius": 22, "sky": "sunny"})
GREEDY = {"temperature": 0, "num_predict": 64}


def functions(message: Any) -> list[Any]:
    """The function calls in an OpenAI reply message."""
    return [c.function for c in message.tool_calls or [] if c.type == "function"]


class ToolCalling(ServedSuite):
    """Tool calls end to end. Override the ``server`` fixture (class-scoped)."""

    def test_show_and_tags_list_tools_for_the_model_and_backend(self, client: ollama.Client, server: ServerProcess) -> None:
        assert "tools" in (client.show(MODEL).capabilities or [])
        tags = httpx.get(server.url + "/api/tags").json()["models"]
        assert "tools" in next(m for m in tags if m["name"].startswith(MODEL))["capabilities"]

    def test_show_lists_exactly_what_requests_accept(self, server: ServerProcess) -> None:
        assert mismatches(server.url, MODEL) == []

    def test_ollama_client_round_trip(self, client: ollama.Client) -> None:
        first = client.chat(model=MODEL, messages=[ASK], tools=[WEATHER], options=GREEDY)
        calls = first.message.tool_calls or []
        assert [(c.function.name, dict(c.function.arguments)) for c in calls] == [("get_weather", {"city": "Paris"})]
        assert first.message.content == "" and first.done_reason == "stop"
        history: list[Any] = [
            {"role": "system", "content": ANSWER_SYSTEM},
            ASK,
            {"role": "assistant", "content": "", "tool_calls": [c.model_dump() for c in calls]},
            {"role": "tool", "tool_name": "get_weather", "content": RESULT},
        ]
        final = client.chat(model=MODEL, messages=history, options=GREEDY)
        assert not final.message.tool_calls
        answer = final.message.content or ""
        assert "22" in answer and "Paris" in answer

    def test_ollama_client_streams_the_call(self, client: ollama.Client) -> None:
        chunks = list(client.chat(model=MODEL, messages=[ASK], tools=[WEATHER], options=GREEDY, stream=True))
        calls = [c for chunk in chunks for c in chunk.message.tool_calls or []]
        assert [(c.function.name, c.function.arguments) for c in calls] == [("get_weather", {"city": "Paris"})]
        assert chunks[-1].done and "".join(c.message.content or "" for c in chunks) == ""

    def test_native_wire_carries_the_call_index(self, server: ServerProcess) -> None:
        body = {"model": MODEL, "messages": [ASK], "tools": [WEATHER], "options": GREEDY, "stream": False}
        reply = httpx.post(server.url + "/api/chat", json=body, timeout=TIMEOUT).json()
        (call,) = reply["message"]["tool_calls"]
        assert call["function"] == {"index": 0, "name": "get_weather", "arguments": {"city": "Paris"}}

    def test_openai_client_round_trip_with_tool_choice_none(self, oai: openai.OpenAI) -> None:
        first = oai.chat.completions.create(model=MODEL, messages=[ASK], tools=[WEATHER], temperature=0, max_tokens=64)
        choice = first.choices[0]
        assert choice.finish_reason == "tool_calls"
        (call,) = choice.message.tool_calls or []
        assert call.id and call.type == "function" and call.function.name == "get_weather"
        assert json.loads(call.function.arguments) == {"city": "Paris"}
        history: list[Any] = [
            {"role": "system", "content": ANSWER_SYSTEM},
            ASK,
            {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
            {"role": "tool", "tool_call_id": call.id, "content": RESULT},
        ]
        final = oai.chat.completions.create(
            model=MODEL, messages=history, tools=[WEATHER], tool_choice="none", temperature=0, max_tokens=64
        )
        assert final.choices[0].finish_reason == "stop" and not final.choices[0].message.tool_calls
        assert "22" in (final.choices[0].message.content or "")

    def test_openai_client_streams_tool_call_deltas(self, oai: openai.OpenAI) -> None:
        stream = oai.chat.completions.create(model=MODEL, messages=[ASK], tools=[WEATHER], temperature=0, max_tokens=64, stream=True)
        chunks = list(stream)
        deltas = [d for c in chunks if c.choices for d in c.choices[0].delta.tool_calls or []]
        assert [d.index for d in deltas] == [0] and deltas[0].id and deltas[0].function
        assert deltas[0].function.name == "get_weather" and json.loads(deltas[0].function.arguments or "") == {"city": "Paris"}
        assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["tool_calls"]

    def test_tool_choice_required_and_named(self, oai: openai.OpenAI) -> None:
        asked: list[Any] = [{"role": "user", "content": "Tell me the time in Tokyo, please."}]
        required = oai.chat.completions.create(
            model=MODEL, messages=asked, tools=[WEATHER, TIME], tool_choice="required", temperature=0, max_tokens=64
        )
        (call,) = functions(required.choices[0].message)
        assert call.name in ("get_weather", "get_time") and json.loads(call.arguments)
        named = oai.chat.completions.create(
            model=MODEL,
            messages=asked,
            tools=[WEATHER, TIME],
            temperature=0,
            max_tokens=64,
            tool_choice={"type": "function", "function": {"name": "get_weather"}},
        )
        calls = functions(named.choices[0].message)
        assert [c.name for c in calls] == ["get_weather"]
        assert set(json.loads(calls[0].arguments)) == {"city"}

    def test_bad_tool_choice_is_a_400(self, oai: openai.OpenAI) -> None:
        with pytest.raises(openai.BadRequestError, match="not in tools"):
            oai.chat.completions.create(
                model=MODEL, messages=[ASK], tools=[WEATHER], tool_choice={"type": "function", "function": {"name": "nope"}}
            )

    def test_langchain_chat_ollama_binds_tools(self, server: ServerProcess) -> None:
        from langchain_core.tools import tool
        from langchain_ollama import ChatOllama

        @tool
        def get_weather(city: str) -> str:
            """Get the current weather for a city."""
            return RESULT

        llm = ChatOllama(model=MODEL, base_url=server.url, temperature=0, num_predict=64, client_kwargs={"timeout": TIMEOUT}).bind_tools(
            [get_weather]
        )
        reply = llm.invoke("What is the weather in Paris?")
        assert [(c["name"], c["args"]) for c in reply.tool_calls] == [("get_weather", {"city": "Paris"})]
