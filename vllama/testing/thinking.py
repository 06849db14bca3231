"""The thinking suite: thinking split from the answer over real HTTP with the official
``ollama`` and ``openai`` clients, run by every backend that declares ``thinking``.

No small reasoning model comes from PyPI, so the suite teaches one: Qwen2.5-Coder-0.5B-Instruct
with a Qwen3-shaped chat template (:data:`TEMPLATE`: its generation prompt opens ``<think>``,
or renders an empty, closed thinking section when ``enable_thinking`` is false), a system
prompt and two worked examples (:data:`SYSTEM`, :data:`EXAMPLES`). At temperature 0 it then
thinks a sentence, closes the tag and answers.

Subclass :class:`Thinking` in a test module of your backend package and override the
``server`` fixture: a running ``vllama serve`` on which :func:`create_thinking_model` made
:data:`MODEL`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import ollama
import openai

from vllama.testing.served import TIMEOUT, ServedSuite
from vllama.testing.server import ServerProcess

MODEL = "thinker"
TEMPLATE = """{%- for m in messages %}<|im_start|>{{ m.role }}
{{ m.content }}<|im_end|>
{% endfor -%}
{%- if add_generation_prompt %}<|im_start|>assistant
{% if enable_thinking is defined and enable_thinking is false %}<think>

</think>

{% else %}<think>
{% endif %}{% endif %}"""
SYSTEM = "You are a helpful assistant. Before answering, you think briefly inside <think> </think> tags, then give a short answer."
EXAMPLES: list[dict[str, str]] = [
    {"role": "user", "content": "What is 2 + 3?"},
    {"role": "assistant", "content": "<think>\nThe user asks for the sum of 2 and 3. 2 + 3 = 5.\n</think>\n\n2 + 3 = 5."},
    {"role": "user", "content": "What colour is the sky on a clear day?"},
    {"role": "assistant", "content": "<think>\nThe sky looks blue because air scatters blue light most.\n</think>\n\nThe sky is blue."},
]
ASK: Any = [{"role": "user", "content": "What is 10 times 4?"}]
GREEDY = {"temperature": 0, "seed": 1, "num_predict": 96}


def create_thinking_model(create: Callable[..., None]) -> None:
    """Create :data:`MODEL` with ``create`` (``create_model`` or ``create_from_dir`` bound to
    a server and weights), with the thinking template, system prompt and examples."""
    create(template=TEMPLATE, system=SYSTEM, messages=EXAMPLES)


def assert_split(thinking: str | None, content: str | None) -> None:
    """A reply that thought and answered, with no tag left in either part."""
    assert thinking and thinking.strip(), f"no thinking (content: {content!r})"
    assert content and content.strip(), f"no answer (thinking: {thinking!r})"
    for part in (thinking, content):
        assert "<think>" not in part and "</think>" not in part
    assert not content[0].isspace() and not thinking[0].isspace()


ANSWER_SCHEMA = {"type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"], "additionalProperties": False}


class Thinking(ServedSuite):
    """Thinking end to end. Override the ``server`` fixture (class-scoped)."""

    def test_show_lists_thinking(self, client: ollama.Client) -> None:
        assert "thinking" in (client.show(MODEL).capabilities or [])

    def test_a_thinking_model_thinks_by_default(self, client: ollama.Client) -> None:
        reply = client.chat(model=MODEL, messages=ASK, options=GREEDY)
        assert_split(reply.message.thinking, reply.message.content)
        assert "40" in (reply.message.content or "")

    def test_ollama_client_streams_thinking_then_the_answer(self, client: ollama.Client) -> None:
        chunks = list(client.chat(model=MODEL, messages=ASK, options=GREEDY, think=True, stream=True))
        kinds = [("thinking" if c.message.thinking else "content") for c in chunks if c.message.thinking or c.message.content]
        assert kinds == sorted(kinds, key=lambda k: k == "content") and len(set(kinds)) == 2  # all thinking, then all answer
        whole = client.chat(model=MODEL, messages=ASK, options=GREEDY, think=True)
        assert "".join(c.message.thinking or "" for c in chunks) == whole.message.thinking
        assert "".join(c.message.content or "" for c in chunks) == whole.message.content
        assert_split(whole.message.thinking, whole.message.content)

    def test_think_false_turns_thinking_off(self, client: ollama.Client) -> None:
        on = client.chat(model=MODEL, messages=ASK, options=GREEDY, think=True)
        off = client.chat(model=MODEL, messages=ASK, options=GREEDY, think=False)
        assert not off.message.thinking and off.message.content and "</think>" not in off.message.content
        # the template rendered the closed, empty thinking section instead of opening one
        assert (off.prompt_eval_count or 0) > (on.prompt_eval_count or 0)

    def test_generate_thinks_too(self, client: ollama.Client) -> None:
        # generate sends no MESSAGE examples: the model may end inside its thought
        reply = client.generate(model=MODEL, prompt=ASK[0]["content"], options=GREEDY, think=True)
        assert reply.thinking and "40" in reply.thinking and "<think>" not in reply.thinking and "</think>" not in (reply.response or "")

    def test_openai_reasoning_effort(self, oai: openai.OpenAI) -> None:
        low = oai.chat.completions.create(model=MODEL, messages=ASK, temperature=0, seed=1, max_tokens=96, reasoning_effort="low")
        message = low.choices[0].message
        assert_split((message.model_extra or {}).get("reasoning"), message.content)
        none = oai.chat.completions.create(model=MODEL, messages=ASK, temperature=0, seed=1, max_tokens=96, reasoning_effort="none")
        assert "reasoning" not in (none.choices[0].message.model_extra or {}) and none.choices[0].message.content

    def test_openai_streams_reasoning_deltas(self, oai: openai.OpenAI) -> None:
        stream = oai.chat.completions.create(model=MODEL, messages=ASK, temperature=0, seed=1, max_tokens=96, stream=True)
        deltas = [c.choices[0].delta for c in stream if c.choices]
        reasoning = "".join((d.model_extra or {}).get("reasoning") or "" for d in deltas)
        assert_split(reasoning, "".join(d.content or "" for d in deltas))

    def test_native_wire_fields(self, server: ServerProcess) -> None:
        body = {"model": MODEL, "messages": ASK, "options": GREEDY, "stream": False}
        reply = httpx.post(server.url + "/api/chat", json=body, timeout=TIMEOUT).json()
        assert_split(reply["message"]["thinking"], reply["message"]["content"])


class ThinkingWithFormat(Thinking):
    """Thinking and ``format`` together, for backends that declare both: the model thinks
    freely, then answers in the format."""

    def test_format_constrains_the_answer_after_the_thinking(self, client: ollama.Client) -> None:
        reply = client.chat(model=MODEL, messages=ASK, options=GREEDY, think=True, format=ANSWER_SCHEMA)
        assert reply.message.thinking and "<think>" not in reply.message.thinking
        assert json.loads(reply.message.content or "") == {"answer": 40}, reply.message.content
