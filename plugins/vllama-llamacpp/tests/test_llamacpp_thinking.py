"""Thinking end to end on llama.cpp: Qwen2.5-Coder-0.5B-Instruct (GGUF) with a Qwen3-shaped
thinking template behind ``vllama serve``, split by the core's parser; ``vllama run`` on it."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import ollama
import pytest

from vllama.testing.hf_models import qwen_coder_gguf
from vllama.testing.server import ServerProcess, create_model
from vllama.testing.thinking import ANSWER_SCHEMA, ASK, GREEDY, MODEL, ThinkingWithFormat, create_thinking_model

PARAMETERS = {"num_thread": 1, "num_ctx": 2048}


def vllama_run(server: ServerProcess, *args: str) -> subprocess.CompletedProcess[str]:
    """``vllama run ARGS`` against ``server``, its output not a terminal (no colour)."""
    env = {**os.environ, "VLLAMA_HOST": f"127.0.0.1:{server.port}"}
    command = [str(Path(sys.executable).with_name("vllama")), "run", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=600, stdin=subprocess.DEVNULL)


class TestLlamaCppThinking(ThinkingWithFormat):
    @pytest.fixture(scope="class")
    def server(self, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
        with ServerProcess(tmp_path_factory.mktemp("thinking") / "models", {"VLLAMA_NUM_PARALLEL": "2"}) as server:
            create_thinking_model(functools.partial(create_model, server.url, MODEL, qwen_coder_gguf(), parameters=PARAMETERS))
            create_model(server.url, "plain", qwen_coder_gguf(), parameters=PARAMETERS)
            yield server

    def test_format_without_thinking_holds_from_the_first_token(self, client: ollama.Client) -> None:
        plain = client.chat(model=MODEL, messages=ASK, options=GREEDY, think=False, format=ANSWER_SCHEMA)
        assert not plain.message.thinking and json.loads(plain.message.content or "") == {"answer": 40}

    def test_vllama_run_shows_the_thinking_then_the_answer(self, server: ServerProcess) -> None:
        # a one-shot run is a generate: no MESSAGE examples, so the model may end inside its thought
        result = vllama_run(server, MODEL, "What is 10 times 4?")
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("Thinking...\n") and "40" in result.stdout
        thought = result.stdout.removeprefix("Thinking...\n").split("...done thinking.\n\n")[0]
        assert thought.strip() and "<think>" not in result.stdout

    def test_vllama_run_sends_no_think_to_a_model_that_cannot(self, server: ServerProcess) -> None:
        result = vllama_run(server, "plain", "Say hello.")
        assert result.returncode == 0 and "Thinking..." not in result.stdout and result.stdout.strip(), result.stderr
        forced = vllama_run(server, "plain", "--think", "Say hello.")
        assert 'warning: model "plain" does not support thinking output' in forced.stderr
        assert forced.returncode != 0 and "does not support thinking" in forced.stderr
