"""Fill-in-the-middle in the core: families found in vocabularies (dicts, GGUF token lists,
tokenizer files), the prompt layout, and the ``insert`` capability the store records."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vllama import fim, gguf
from vllama.store.describe import describe_directory, describe_gguf, with_template
from vllama.testing.gguf import tiny_model
from vllama.types import ChatRequest, GenerateRequest

QWEN = {
    "<|endoftext|>": 151643,
    "<|im_end|>": 151645,
    "<|fim_prefix|>": 151659,
    "<|fim_middle|>": 151660,
    "<|fim_suffix|>": 151661,
    "<|fim_pad|>": 151662,
    "<|repo_name|>": 151663,
    "<|file_sep|>": 151664,
}
#: SmolLM2's special tokens: StarCoder's repository tokens, no FIM ones.
SMOLLM2 = {"<|endoftext|>": 0, "<|im_start|>": 1, "<|im_end|>": 2, "<repo_name>": 3, "<reponame>": 4, "<file_sep>": 5, "<filename>": 6}

# Ordinary token texts: nothing a family names.
plain_texts = st.text(min_size=1, max_size=12).filter(lambda t: t not in fim.TOKEN_TEXTS)
plain_vocabs = st.dictionaries(plain_texts, st.integers(0, 200_000), max_size=30)
token_lists = st.lists(st.integers(0, 1000), max_size=20)


def test_qwen_tokens_their_psm_layout_and_ends() -> None:
    tokens = fim.find(QWEN)
    assert tokens is not None
    assert tokens == fim.FimTokens(151659, 151661, 151660, False, frozenset({151643, 151659, 151660, 151661, 151662, 151663, 151664}))
    assert tokens.layout([1, 2], [3]) == [151659, 1, 2, 151661, 3, 151660]
    assert 151645 not in tokens.ends  # <|im_end|> ends a chat turn: the engine's own end token, not the family's


def test_a_vocabulary_without_fim_tokens_has_none() -> None:
    assert fim.find(SMOLLM2) is None
    assert fim.find({"<|fim_prefix|>": 1, "<|fim_suffix|>": 2}) is None  # no middle token


@pytest.mark.parametrize(
    ("family", "layout"),
    [
        (fim.FAMILIES[0], ["P", "p", "S", "s", "M"]),
        (next(f for f in fim.FAMILIES if f.name == "deepseek"), ["P", "p", "S", "s", "M"]),
        (next(f for f in fim.FAMILIES if f.name == "codestral"), ["S", "s", "P", "p"]),
    ],
)
def test_layout_follows_the_family(family: fim.Family, layout: list[str]) -> None:
    vocab = {t: i for i, t in enumerate(family.parts)}
    tokens = fim.find(vocab)
    assert tokens is not None
    names = {tokens.prefix: "P", tokens.suffix: "S", tokens.middle: "M", 100: "p", 200: "s"}
    assert [names[t] for t in tokens.layout([100], [200])] == layout


@given(st.sampled_from(fim.FAMILIES), plain_vocabs, st.integers(1000, 2000))
def test_each_family_is_found_in_any_vocabulary_that_holds_it(family: fim.Family, vocab: dict[str, int], base: int) -> None:
    full = {**vocab, **{t: base + i for i, t in enumerate((*family.parts, *family.ends))}}
    tokens = fim.find(full)
    assert tokens is not None
    assert (tokens.prefix, tokens.suffix) == (full[family.prefix], full[family.suffix])
    assert tokens.middle == (full[family.middle] if family.middle else None)
    assert tokens.suffix_first == family.suffix_first
    assert tokens.ends == {full[t] for t in (*family.parts, *family.ends)}


@given(plain_vocabs)
def test_ordinary_vocabularies_have_no_fim_tokens(vocab: dict[str, int]) -> None:
    assert fim.find(vocab) is None


@given(token_lists, token_lists, token_lists, st.booleans())
def test_the_prompt_holds_context_prefix_and_suffix_in_order(context: list[int], prefix: list[int], suffix: list[int], spm: bool) -> None:
    tokens = fim.FimTokens(-1, -2, None if spm else -3, spm)
    pieces = {"def f(": prefix, "return": suffix}
    request = GenerateRequest(prompt="def f(", suffix="return", system="ignored", context=context)
    out = fim.prompt(tokens, request, lambda text: pieces[text], bos=[-9])
    head = context or [-9]
    body = [-2, *suffix, -1, *prefix] if spm else [-1, *prefix, -2, *suffix, -3]
    assert out == head + body


def test_fim_is_wanted_for_a_suffix_unless_raw() -> None:
    assert fim.wanted(GenerateRequest(prompt="a", suffix="b"))
    assert not fim.wanted(GenerateRequest(prompt="a", suffix="b", raw=True))
    assert not fim.wanted(GenerateRequest(prompt="a"))


def test_gguf_metadata_may_name_the_tokens() -> None:
    assert fim.declared(
        {"tokenizer.ggml.fim_pre_token_id": 1, "tokenizer.ggml.fim_suf_token_id": 2, "tokenizer.ggml.fim_mid_token_id": 3}
    ) == fim.FimTokens(1, 2, 3)
    assert fim.declared(
        {"tokenizer.ggml.prefix_token_id": 4, "tokenizer.ggml.suffix_token_id": 5, "tokenizer.ggml.middle_token_id": 6}
    ) == fim.FimTokens(4, 5, 6)
    assert fim.declared({"tokenizer.ggml.fim_pre_token_id": 1}) is None


class _Tokenizer:
    def __init__(self, head: list[int], tail: list[int]) -> None:
        self.head, self.tail = head, tail

    def encode(self, text: str, add_special_tokens: bool) -> list[int]:
        body = [ord(c) for c in text]
        return [*self.head, *body, *self.tail] if add_special_tokens else body


@pytest.mark.parametrize(("head", "tail"), [([], []), ([1], []), ([1], [2]), ([], [2])])
def test_hf_bos_is_what_the_tokenizer_puts_before_a_text(head: list[int], tail: list[int]) -> None:
    assert fim.hf_bos(_Tokenizer(head, tail)) == head


# -- vocabularies in model files --------------------------------------------------------------


@given(st.lists(plain_texts, max_size=100, unique=True), st.sets(st.sampled_from(sorted(fim.TOKEN_TEXTS))), st.randoms())
@settings(max_examples=40, deadline=None)
def test_gguf_token_scan_finds_the_asked_tokens_at_their_ids(plain: list[str], special: set[str], rnd: Any) -> None:
    vocab = plain + sorted(special)
    rnd.shuffle(vocab)
    with tempfile.TemporaryDirectory() as tmp:
        path = tiny_model(Path(tmp) / "m.gguf", **{"tokenizer.ggml.tokens": vocab})
        read = gguf.read(path, find_tokens=fim.TOKEN_TEXTS)
        plain_read = gguf.read(path)
    assert read.tokens == {t: vocab.index(t) for t in special}
    assert read.metadata == plain_read.metadata  # the scan changes nothing else


def test_insert_is_a_capability_exactly_of_gguf_models_with_fim_tokens(tmp_path: Path) -> None:
    with_fim = ["a", "b", "<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", "<|endoftext|>", *map(str, range(100))]
    without = ["a", "b", "<reponame>", "<file_sep>", *map(str, range(100))]
    declared = {"tokenizer.ggml.fim_pre_token_id": 0, "tokenizer.ggml.fim_suf_token_id": 1, "tokenizer.ggml.fim_mid_token_id": 2}
    assert "insert" in describe_gguf(tiny_model(tmp_path / "a.gguf", **{"tokenizer.ggml.tokens": with_fim})).capabilities
    assert "insert" not in describe_gguf(tiny_model(tmp_path / "b.gguf", **{"tokenizer.ggml.tokens": without})).capabilities
    assert "insert" in describe_gguf(tiny_model(tmp_path / "c.gguf", **declared)).capabilities


def _hf_dir(path: Path, tokenizer: dict[str, Any], config: dict[str, Any] | None = None) -> Path:
    """A model directory with one tiny safetensors file and the given tokenizer files."""
    path.mkdir()
    header = json.dumps({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode()
    (path / "model.safetensors").write_bytes(len(header).to_bytes(8, "little") + header + b"\0" * 8)
    (path / "config.json").write_text(json.dumps({"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2"}))
    (path / "tokenizer.json").write_text(json.dumps(tokenizer))
    if config is not None:
        (path / "tokenizer_config.json").write_text(json.dumps(config))
    return path


def test_insert_is_a_capability_exactly_of_directories_whose_tokenizer_has_fim_tokens(tmp_path: Path) -> None:
    added = [{"id": i, "content": t, "special": True} for t, i in QWEN.items()]
    qwen = _hf_dir(tmp_path / "qwen", {"model": {"type": "BPE", "vocab": {"a": 0}}, "added_tokens": added})
    smol = _hf_dir(
        tmp_path / "smol",
        {"model": {"type": "BPE", "vocab": {"a": 0}}, "added_tokens": [{"id": i, "content": t} for t, i in SMOLLM2.items()]},
    )
    # CodeLlama's tokens are ordinary pieces of its (Unigram) vocabulary
    llama = _hf_dir(
        tmp_path / "llama", {"model": {"type": "Unigram", "vocab": [["a", 0.0], ["▁<PRE>", 0.0], ["▁<SUF>", 0.0], ["▁<MID>", 0.0]]}}
    )
    # or added tokens named only in tokenizer_config.json
    star = _hf_dir(
        tmp_path / "star",
        {"model": {"type": "BPE", "vocab": {}}},
        {"added_tokens_decoder": {"1": {"content": "<fim_prefix>"}, "2": {"content": "<fim_middle>"}, "3": {"content": "<fim_suffix>"}}},
    )
    assert "insert" in describe_directory(qwen).capabilities
    assert "insert" not in describe_directory(smol).capabilities
    assert "insert" in describe_directory(llama).capabilities
    assert "insert" in describe_directory(star).capabilities


def test_the_middle_ends_a_fim_request_and_a_raw_prompt() -> None:
    """A raw prompt may be a FIM prompt an editor plugin wrote itself (Continue does)."""
    tokens = fim.find(QWEN)
    assert tokens is not None
    assert fim.ends(tokens, GenerateRequest(prompt="a", suffix="b")) == tokens.ends
    assert fim.ends(tokens, GenerateRequest(prompt="a")) == frozenset()
    assert fim.ends(tokens, GenerateRequest(prompt="<|fim_prefix|>a<|fim_suffix|>b<|fim_middle|>", raw=True)) == tokens.ends
    assert fim.ends(None, GenerateRequest(prompt="a", suffix="b")) == frozenset()
    assert fim.ends(tokens, ChatRequest(messages=[])) == frozenset()


def test_capabilities_keep_ollamas_order_whatever_the_template() -> None:
    assert with_template(["completion", "insert"], "{% if tools %}<think>{% endif %}") == ["completion", "tools", "insert", "thinking"]
    assert with_template(["completion", "tools", "insert"], "plain") == ["completion", "insert"]
