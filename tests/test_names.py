"""Model names: parsing, defaults, case-insensitivity and the store-escape guarantee."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vllama.errors import BadRequest, InvalidName
from vllama.names import DEFAULT_HOST, DEFAULT_NAMESPACE, DEFAULT_TAG, ModelName, parse_name

# Parts built from the alphabets of Ollama's rules (kept short so examples stay readable).
hosts = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.:-]{0,30}", fullmatch=True).filter(lambda h: ".." not in h)
namespaces = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,30}", fullmatch=True)
models = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,30}", fullmatch=True)
tags = models


@st.composite
def names(draw: st.DrawFn) -> ModelName:
    host = draw(st.one_of(st.just(DEFAULT_HOST), hosts))
    if host.lower() == "huggingface.co":
        host = "hf.co"
    namespace = draw(st.one_of(st.just(DEFAULT_NAMESPACE), namespaces))
    return ModelName(host, namespace, draw(models), draw(tags))


# -- round trips and equality ------------------------------------------------------------


@given(names())
def test_display_and_full_round_trip(name: ModelName) -> None:
    parsed = parse_name(name.display)
    assert parsed == name
    assert parsed.display == name.display
    assert parsed.parts == name.parts
    assert all(p == p.lower() for p in name.parts)
    assert parse_name(name.full) == name
    assert parse_name(name.full).full == name.full


@given(names())
def test_case_insensitive_equality(name: ModelName) -> None:
    upper, lower, swapped = (parse_name(f(name.full)) for f in (str.upper, str.lower, str.swapcase))
    assert upper == lower == swapped == name
    assert len({hash(upper), hash(lower), hash(swapped), hash(name)}) == 1


def test_case_is_kept_for_display_but_not_for_comparison() -> None:
    name = parse_name("MyOrg/MyModel:Q4_K_M")
    assert name.display == "MyOrg/MyModel:Q4_K_M"
    assert name.parts == (DEFAULT_HOST, "myorg", "mymodel", "q4_k_m")
    assert name == parse_name("myorg/mymodel:q4_k_m")
    assert str(name) == name.display


# -- defaults --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "llama3.2",
        "llama3.2:latest",
        "library/llama3.2",
        "library/llama3.2:latest",
        "registry.ollama.ai/library/llama3.2:latest",
        "REGISTRY.OLLAMA.AI/Library/LLAMA3.2:LATEST",
        "https://registry.ollama.ai/library/llama3.2:latest",
        "http://registry.ollama.ai/library/llama3.2",
    ],
)
def test_defaults(text: str) -> None:
    name = parse_name(text)
    assert name == parse_name("llama3.2")
    assert name.parts == ("registry.ollama.ai", "library", "llama3.2", "latest")
    assert name.display.lower() == "llama3.2:latest"
    assert name.full.lower() == "registry.ollama.ai/library/llama3.2:latest"


def test_default_constants() -> None:
    assert (DEFAULT_HOST, DEFAULT_NAMESPACE, DEFAULT_TAG) == ("registry.ollama.ai", "library", "latest")


def test_namespace_without_host() -> None:
    name = parse_name("jmorganca/mistral:7b")
    assert (name.host, name.namespace, name.model, name.tag) == (DEFAULT_HOST, "jmorganca", "mistral", "7b")
    assert name.display == "jmorganca/mistral:7b"


def test_hugging_face() -> None:
    name = parse_name("hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M")
    assert (name.host, name.namespace, name.model, name.tag) == (
        "hf.co",
        "bartowski",
        "Llama-3.2-1B-Instruct-GGUF",
        "Q4_K_M",
    )
    assert name.display == "hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M"
    assert parse_name("hf.co/bartowski/llama-3.2-1b-instruct-gguf:q4_k_m") == name


@pytest.mark.parametrize(
    "text",
    ["huggingface.co/org/repo:Q4_K_M", "HuggingFace.co/org/repo:Q4_K_M", "https://huggingface.co/org/repo:Q4_K_M"],
)
def test_huggingface_co_becomes_hf_co(text: str) -> None:
    name = parse_name(text)
    assert name.host == "hf.co"
    assert name == parse_name("hf.co/org/repo:Q4_K_M")
    assert name.display == "hf.co/org/repo:Q4_K_M"


def test_host_with_port() -> None:
    name = parse_name("localhost:5000/team/model:v1")
    assert (name.host, name.namespace, name.model, name.tag) == ("localhost:5000", "team", "model", "v1")
    assert parse_name(name.display) == name


def test_digest() -> None:
    hexd = "ab" * 32
    name = parse_name(f"llama3.2@sha256-{hexd}")
    assert name.digest == f"sha256:{hexd}"
    assert name == parse_name("llama3.2")  # the digest is not part of the identity
    assert parse_name(f"llama3.2:1b@sha256:{hexd}").tag == "1b"
    with pytest.raises(InvalidName):
        parse_name("llama3.2@sha256:xyz")
    with pytest.raises(InvalidName):
        parse_name("llama3.2@md5:" + "a" * 32)


def test_longest_valid_parts() -> None:
    assert parse_name("m:" + "t" * 80).tag == "t" * 80
    assert parse_name("m" * 80).model == "m" * 80
    assert parse_name("n" * 80 + "/m").namespace == "n" * 80


# -- invalid names ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "../x",
        "a/../b",
        "..",
        "../../etc/passwd",
        "a/b/c/d",
        "/etc/passwd",
        "llama 3",
        "my model:latest",
        "llama3:la test",
        ".hidden",
        "-dash",
        "ns/.hidden",
        "ns/-dash",
        "a..b/ns/m",  # '..' in the host
        "m:.tag",
        "m:-tag",
        "m:",
        ":tag",
        "ns/",
        "/m",
        "m:" + "t" * 81,
        "m" * 81,
        "n" * 81 + "/m",
        "ns.with.dots/m",
        "a\\b",
        "a\x00b",
        "mödel",
        # Names are taken as given, never stripped: DELETE "smol\n" must not delete "smol".
        "  llama3.2  ",
        "smol\n",
        " smol",
        "smol:latest\t",
        "sm ol",
        "smol\r\n",
    ],
)
def test_invalid_names(text: str) -> None:
    with pytest.raises(InvalidName) as info:
        parse_name(text)
    assert isinstance(info.value, BadRequest) and info.value.status == 400


def test_invalid_name_messages() -> None:
    with pytest.raises(InvalidName, match="model is required"):
        parse_name("")
    with pytest.raises(InvalidName, match="too many '/'"):
        parse_name("a/b/c/d")
    with pytest.raises(InvalidName, match="bad tag"):
        parse_name("m:" + "t" * 81)


@given(
    st.from_regex(r"[a-z0-9][a-z0-9_.-]{0,20}(:[a-z0-9][a-z0-9_.-]{0,10})?", fullmatch=True),
    st.sampled_from(" \t\n\r\x0b\x0c\u00a0\u2003"),
    st.integers(min_value=0),
)
def test_whitespace_anywhere_is_invalid(name: str, space: str, at: int) -> None:
    """A valid name with whitespace put anywhere in it is refused, never read as the name."""
    at %= len(name) + 1
    with pytest.raises(InvalidName, match="invalid model name"):
        parse_name(name[:at] + space + name[at:])


@given(st.text(min_size=1, max_size=40).filter(lambda t: any(c.isspace() for c in t)))
def test_no_name_with_whitespace_parses(text: str) -> None:
    with pytest.raises(InvalidName):
        parse_name(text)


def test_a_very_long_name_is_invalid_and_quoted_short() -> None:
    with pytest.raises(InvalidName) as info:
        parse_name("x" * 10_000)
    assert len(info.value.message) < 400


def test_non_string_is_invalid() -> None:
    with pytest.raises(InvalidName):
        parse_name(None)


# -- nothing escapes the store ------------------------------------------------------------


def _assert_safe(name: ModelName) -> None:
    for part in name.parts:
        assert part, name
        assert "/" not in part and "\\" not in part and "\x00" not in part, name
        assert part != ".." and part != ".", name
        assert not part.startswith("."), name


@given(st.text())
def test_any_text_is_rejected_or_safe(text: str) -> None:
    try:
        name = parse_name(text)
    except InvalidName:
        return
    _assert_safe(name)


# Text made mostly of the characters that matter for paths finds more corners than st.text().
@given(st.text(alphabet="./\\:@-_aZ9 \t\n", max_size=40))
def test_path_like_text_is_rejected_or_safe(text: str) -> None:
    try:
        name = parse_name(text)
    except InvalidName:
        return
    _assert_safe(name)
