"""The core's thinking parser: any chunking of a reply splits as the whole reply does, tags
inferred from templates, the template switches, and the thinking rules at the routes (echo
backend)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vllama.chat_inputs import template_kwargs
from vllama.testing.gguf import tiny_model
from vllama.testing.server import ServerProcess, create_model
from vllama.thinking import HARMONY, KNOWN_TAGS, THINK, HarmonyParser, Splitter, TagParser, Tags, splitter, thinking_format

QWEN3_SHAPE = (
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n"
    "{% if enable_thinking is defined and enable_thinking is false %}<think>\n\n</think>\n\n{% else %}<think>\n{% endif %}{% endif %}"
)
GPT_OSS_SHAPE = "<|start|>system<|message|>Reasoning: {{ reasoning_effort }}<|end|>{{ x }}<|start|>assistant<|channel|>final<|message|>"

#: Text without tags (what a model writes between them), with whitespace and tag-like pieces.
plain = st.text(alphabet=st.sampled_from(list("ab <>/\n\t|k")), max_size=30).filter(lambda t: "<think>" not in t and "</think>" not in t)


def chunked(parser: Splitter, text: str, cuts: list[int]) -> tuple[str, str]:
    """Feed ``text`` cut at ``cuts``; return all the thinking and all the answer."""
    thinking, answer, start = [], [], 0
    for cut in [*sorted(c % (len(text) + 1) for c in cuts), len(text)]:
        t, a = parser.feed(text[start:cut])
        thinking.append(t)
        answer.append(a)
        start = max(start, cut)
    t, a = parser.flush()
    return "".join([*thinking, t]), "".join([*answer, a])


@given(thought=plain, answer=plain, lead=st.sampled_from(["", " ", "\n\n"]), cuts=st.lists(st.integers(0, 200), max_size=8))
def test_any_chunking_splits_as_the_whole_reply(thought: str, answer: str, lead: str, cuts: list[int]) -> None:
    reply = f"{lead}<think>{thought}</think>{answer}"
    whole = chunked(TagParser(THINK), reply, [])
    assert chunked(TagParser(THINK), reply, cuts) == whole
    # whitespace after each tag is eaten; the rest is kept as written
    assert whole == (thought.lstrip(), answer.lstrip())


@given(thought=plain, answer=plain, cuts=st.lists(st.integers(0, 200), max_size=8))
def test_a_prompt_that_opened_the_tag_starts_inside_it(thought: str, answer: str, cuts: list[int]) -> None:
    reply = f"{thought}</think>{answer}"
    assert chunked(TagParser(THINK, inside=True), reply, cuts) == (thought.lstrip(), answer.lstrip())


@given(text=plain, cuts=st.lists(st.integers(0, 200), max_size=8))
def test_a_reply_that_does_not_open_with_the_tag_is_all_answer(text: str, cuts: list[int]) -> None:
    reply = "x" + text + "<think>later</think>"
    assert chunked(TagParser(THINK), reply, cuts) == ("", reply)


@given(thought=plain, cuts=st.lists(st.integers(0, 200), max_size=8))
def test_an_unclosed_thought_is_all_thinking(thought: str, cuts: list[int]) -> None:
    assert chunked(TagParser(THINK), "<think>" + thought, cuts) == (thought.lstrip(), "")


def test_a_partial_closing_tag_is_held_until_known() -> None:
    parser = TagParser(THINK, inside=True)
    assert parser.feed("so 5</thi") == ("so 5", "")
    assert parser.feed("s is not it") == ("</this is not it", "")
    assert parser.feed("</think>\n\n") == ("", "")
    assert parser.feed("Five.") == ("", "Five.")


harmony_text = st.text(alphabet=st.sampled_from(list("ab <>|\n")), max_size=20)


@given(thought=harmony_text, answer=harmony_text, cuts=st.lists(st.integers(0, 300), max_size=8))
def test_harmony_channels(thought: str, answer: str, cuts: list[int]) -> None:
    reply = f"<|channel|>analysis<|message|>{thought}<|end|><|start|>assistant<|channel|>final<|message|>{answer}<|return|>"
    assert chunked(HarmonyParser(), reply, cuts) == (thought, answer)


def test_harmony_knows_when_the_answer_begins_and_keeps_unmarked_text() -> None:
    parser = HarmonyParser()
    assert parser.feed("<|channel|>analysis<|message|>hmm<|end|>") == ("hmm", "") and not parser.answering
    assert parser.feed("<|start|>assistant<|channel|>final<|message|>Yes") == ("", "Yes") and parser.answering
    plain = HarmonyParser()
    assert plain.feed("no markers at all") == ("", "") and plain.flush() == ("", "no markers at all")
    assert TagParser(THINK).feed("<think>a</think>b") == ("a", "b")


def test_formats_from_templates() -> None:
    assert thinking_format(QWEN3_SHAPE) == THINK
    assert thinking_format(GPT_OSS_SHAPE) == HARMONY
    assert thinking_format("{{ messages }}<seed:think>x</seed:think>") == Tags("<seed:think>", "</seed:think>")
    assert thinking_format("{% if enable_thinking %}{% endif %}") == THINK
    assert thinking_format("{% for m in messages %}{{ m.content }}{% endfor %}") is None
    assert THINK in KNOWN_TAGS


def test_splitter_only_when_the_request_thinks() -> None:
    assert splitter(THINK, False, "x<think>\n") is None and splitter(THINK, None, "x") is None
    assert splitter(None, True, "x") is None
    inside = splitter(THINK, "high", "<|im_start|>assistant\n<think>\n")
    assert isinstance(inside, TagParser) and inside.feed("a</think>b") == ("a", "b")
    outside = splitter(THINK, True, "<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert outside is not None and outside.feed("a</think>b") == ("", "a</think>b")
    assert isinstance(splitter(HARMONY, True, ""), HarmonyParser)


def test_template_switches() -> None:
    assert template_kwargs(None) == {}
    assert template_kwargs(True) == {"enable_thinking": True, "thinking": True}
    assert template_kwargs(False) == {"enable_thinking": False, "thinking": False}
    assert template_kwargs("low") == {"enable_thinking": True, "thinking": True, "reasoning_effort": "low"}
    assert template_kwargs("max")["reasoning_effort"] == "high"


# -- at the routes (echo backend: it thinks when asked) -------------------------------------------


@pytest.fixture(scope="module")
def always_thinks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model whose template always opens thinking: it has no switch to turn it off."""
    return tiny_model(tmp_path_factory.mktemp("r1") / "r1.gguf", template="{{ messages }}<think>\n")


def chat(url: str, model: str, **body: object) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "one two"}], "stream": False, **body}
    return httpx.post(f"{url}/api/chat", json=body, timeout=30)


def test_a_model_that_can_think_thinks_unless_told_not_to(echo_server: ServerProcess) -> None:
    assert chat(echo_server.url, "echo").json()["message"]["thinking"] == "The user said 2 words."
    off = chat(echo_server.url, "echo", think=False).json()["message"]
    assert "thinking" not in off and off["content"] == "one two"


def test_reasoning_effort_maps_to_think(echo_server: ServerProcess) -> None:
    def ask(**extra: object) -> httpx.Response:
        body = {"model": "echo", "messages": [{"role": "user", "content": "hi"}], **extra}
        return httpx.post(f"{echo_server.url}/v1/chat/completions", json=body, timeout=30)

    assert ask(reasoning_effort="none").json()["choices"][0]["message"].get("reasoning") is None
    assert ask(reasoning_effort="minimal").json()["choices"][0]["message"]["reasoning"] == "The user said 1 words."
    assert ask(reasoning_effort="extreme").status_code == 400


def test_think_false_is_refused_where_the_template_always_thinks(
    tmp_path: Path, always_thinks: Path, echo_server_with: Callable[..., ServerProcess]
) -> None:
    with echo_server_with(tmp_path) as server:
        create_model(server.url, "r1", always_thinks)
        r = chat(server.url, "r1", think=False)
        assert r.status_code == 400 and r.json() == {"error": '"r1:latest" cannot turn thinking off: its template always thinks'}
        assert chat(server.url, "r1").json()["message"]["thinking"]


def test_an_unknown_reasoning_parser_is_refused_before_load(
    tmp_path: Path, tiny_gguf: Path, echo_server_with: Callable[..., ServerProcess]
) -> None:
    with echo_server_with(tmp_path) as server:
        create_model(server.url, "named", tiny_gguf, parameters={"reasoning_parser": "nope"})
        r = chat(server.url, "named")
        assert r.status_code == 400 and "invalid reasoning_parser 'nope'" in r.json()["error"]
        assert httpx.get(f"{server.url}/api/ps").json()["models"] == []
