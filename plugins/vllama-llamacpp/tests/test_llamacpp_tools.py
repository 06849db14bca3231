"""Tool calling end to end on llama.cpp: Qwen2.5-Coder-0.5B-Instruct (GGUF) behind ``vllama serve``."""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import ollama
import pytest

from vllama.testing.hf_models import qwen_coder_gguf
from vllama.testing.server import ServerProcess, create_model
from vllama.testing.tool_calling import ANSWER_SYSTEM, ASK, MODEL, RESULT, TIMEOUT, WEATHER, ToolCalling

#: The anthropic client has no sampling fields; vllama reads them from the body, as Ollama does.
GREEDY_BODY = {"temperature": 0}


class TestLlamaCppTools(ToolCalling):
    @pytest.fixture(scope="class")
    def server(self, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
        with ServerProcess(tmp_path_factory.mktemp("tools") / "models", {"VLLAMA_NUM_PARALLEL": "2"}) as server:
            create_model(server.url, MODEL, qwen_coder_gguf(), parameters={"num_thread": 1, "num_ctx": 2048})
            yield server

    def test_capabilities_are_exactly_completion_tools_and_insert(self, client: ollama.Client) -> None:
        assert client.show(MODEL).capabilities == ["completion", "tools", "insert"]

    def test_anthropic_client_round_trip(self, server: ServerProcess) -> None:
        """Claude Code's API: a tool_use block, then the answer from its tool_result."""
        claude = anthropic.Anthropic(base_url=server.url, api_key="unused", timeout=TIMEOUT)
        tool = {"name": "get_weather", "description": WEATHER["function"]["description"], "input_schema": WEATHER["function"]["parameters"]}
        first = claude.messages.create(model=MODEL, max_tokens=64, extra_body=GREEDY_BODY, tools=[tool], messages=[ASK])
        uses = [b for b in first.content if b.type == "tool_use"]
        assert first.stop_reason == "tool_use" and [(u.name, u.input) for u in uses] == [("get_weather", {"city": "Paris"})]
        assert first.usage.input_tokens > 50 and first.usage.output_tokens > 0
        answer = claude.messages.create(
            model=MODEL,
            max_tokens=64,
            extra_body=GREEDY_BODY,
            system=ANSWER_SYSTEM,
            messages=[
                ASK,
                {"role": "assistant", "content": first.content},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": uses[0].id, "content": RESULT}]},
            ],
        )
        text = "".join(b.text for b in answer.content if b.type == "text")
        assert answer.stop_reason == "end_turn" and "22" in text and "Paris" in text

    def test_anthropic_client_streams_the_call(self, server: ServerProcess) -> None:
        claude = anthropic.Anthropic(base_url=server.url, api_key="unused", timeout=TIMEOUT)
        tool = {"name": "get_weather", "description": WEATHER["function"]["description"], "input_schema": WEATHER["function"]["parameters"]}
        with claude.messages.stream(model=MODEL, max_tokens=64, extra_body=GREEDY_BODY, tools=[tool], messages=[ASK]) as stream:
            final = stream.get_final_message()
        uses = [b for b in final.content if b.type == "tool_use"]
        assert final.stop_reason == "tool_use" and [(u.name, u.input) for u in uses] == [("get_weather", {"city": "Paris"})]
        with claude.messages.stream(
            model=MODEL, max_tokens=8, extra_body=GREEDY_BODY, messages=[{"role": "user", "content": "Say hello."}]
        ) as stream:
            text = "".join(stream.text_stream)
            final = stream.get_final_message()
        assert text and final.content[0].text == text and final.usage.output_tokens > 0
