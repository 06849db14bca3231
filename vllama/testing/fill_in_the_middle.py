"""The fill-in-the-middle suite: ``suffix`` over real HTTP with the official ``ollama`` and
``openai`` clients, run by every backend that declares ``insert``, on Qwen2.5-Coder-0.5B-Instruct
at temperature 0, with SmolLM2 (no FIM tokens) beside it.

Subclass :class:`FillInTheMiddle` in a test module of your backend package and override the
``server`` fixture: a running ``vllama serve`` on which the models :data:`MODEL` (Qwen2.5-Coder)
and :data:`PLAIN` (SmolLM2) have been created.
"""

from __future__ import annotations

import httpx
import ollama
import openai

from vllama.testing.served import ServedSuite
from vllama.testing.server import ServerProcess, refused_before_load

MODEL = "coder"
PLAIN = "smol"
PREFIX = "def add(a, b):\n"
SUFFIX = "\n\nprint(add(1, 2))\n"
#: What the model writes between them.
MIDDLE = "return a + b"
GREEDY = {"temperature": 0, "num_predict": 32}


class FillInTheMiddle(ServedSuite):
    """``suffix`` end to end. Override the ``server`` fixture (class-scoped)."""

    def test_insert_is_listed_exactly_for_the_model_with_fim_tokens(self, client: ollama.Client, server: ServerProcess) -> None:
        assert "insert" in (client.show(MODEL).capabilities or [])
        assert "insert" not in (client.show(PLAIN).capabilities or [])
        tags = {m["name"]: m["capabilities"] for m in httpx.get(server.url + "/api/tags").json()["models"]}
        assert "insert" in tags[f"{MODEL}:latest"] and "insert" not in tags[f"{PLAIN}:latest"]

    def test_ollama_client_fills_in_the_middle(self, client: ollama.Client) -> None:
        reply = client.generate(model=MODEL, prompt=PREFIX, suffix=SUFFIX, options=GREEDY)
        assert MIDDLE in (reply.response or "")
        assert reply.done_reason == "stop"  # ended by the model's FIM end token, not the limit
        assert reply.eval_count is not None and reply.eval_count < GREEDY["num_predict"]

    def test_ollama_client_streams_the_middle(self, client: ollama.Client) -> None:
        chunks = list(client.generate(model=MODEL, prompt=PREFIX, suffix=SUFFIX, options=GREEDY, stream=True))
        assert MIDDLE in "".join(c.response or "" for c in chunks)
        assert chunks[-1].done and chunks[-1].done_reason == "stop"

    def test_openai_client_completion_with_suffix(self, oai: openai.OpenAI) -> None:
        completion = oai.completions.create(model=MODEL, prompt=PREFIX, suffix=SUFFIX, temperature=0, max_tokens=32)
        choice = completion.choices[0]
        assert MIDDLE in choice.text and choice.finish_reason == "stop"

    def test_system_is_not_part_of_the_fim_prompt_and_raw_ignores_the_suffix(self, client: ollama.Client) -> None:
        # As in Ollama: with a suffix, the prompt is prefix and suffix in the FIM layout (no
        # system prompt); a raw prompt is sent as it is.
        fim = client.generate(model=MODEL, prompt=PREFIX, suffix=SUFFIX, options={**GREEDY, "num_predict": 1})
        told = client.generate(model=MODEL, prompt=PREFIX, suffix=SUFFIX, system="Answer in French.", options={**GREEDY, "num_predict": 1})
        raw = client.generate(model=MODEL, prompt=PREFIX, suffix=SUFFIX, raw=True, options={**GREEDY, "num_predict": 1})
        assert told.prompt_eval_count == fim.prompt_eval_count
        assert raw.prompt_eval_count is not None and fim.prompt_eval_count is not None
        assert raw.prompt_eval_count + 3 <= fim.prompt_eval_count  # no suffix, no FIM tokens

    def test_suffix_for_a_model_without_fim_tokens_is_a_400(self, server: ServerProcess) -> None:
        body = {"prompt": PREFIX, "suffix": SUFFIX, "stream": False}
        error = refused_before_load(server.url, PLAIN, "/api/generate", body)
        assert error in (f'"{PLAIN}" does not support insert', f'"{PLAIN}:latest" does not support insert')
        response = httpx.post(server.url + "/v1/completions", json={"model": PLAIN, "prompt": PREFIX, "suffix": SUFFIX}, timeout=60)
        assert response.status_code == 400 and "does not support insert" in response.json()["error"]["message"]
