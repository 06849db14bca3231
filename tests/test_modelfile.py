"""Modelfile: parsing, rendering and the parse -> render -> parse identity."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vllama.errors import BadRequest
from vllama.modelfile import Modelfile, parse, render
from vllama.options import RANGES

# -- strategies ------------------------------------------------------------------------------

_INT_OPTIONS = [
    "num_keep",
    "seed",
    "num_predict",
    "top_k",
    "repeat_last_n",
    "num_ctx",
    "num_batch",
    "num_gpu",
    "main_gpu",
    "num_thread",
    "num_parallel",
]
_FLOAT_OPTIONS = ["top_p", "min_p", "typical_p", "temperature", "repeat_penalty", "presence_penalty", "frequency_penalty"]


# Any text: edge whitespace, quotes at either end, \r, triple quotes and the characters that
# str.splitlines() also breaks on are all fair game.
_SPLITLINES_ONLY = "\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
_CHARS = st.characters(codec="utf-8", exclude_categories=("Cs",))
_TRICKY = st.sampled_from(['"', '"""', "\n", "\r\n", "\r", " ", "\t", "#", "\\", "'", "PARAMETER ", "\nFROM y\n", *_SPLITLINES_ONLY])
texts = st.lists(st.one_of(st.text(_CHARS, max_size=10), _TRICKY), max_size=6).map("".join)
_line = st.text(_CHARS, min_size=1, max_size=20).filter(lambda t: t.strip() != "")

stop_words = st.one_of(
    st.sampled_from(
        ["<|im_end|>", "<|eot_id|>", "</s>", "User:", "###", "a b", '"quoted"', "\t", " lead", "trail ", "\n", "\n\n", "User:\n"]
    ),
    texts.filter(bool),
)


@st.composite
def parameters(draw: st.DrawFn) -> dict:
    out: dict = {}
    for key in draw(st.lists(st.sampled_from(_INT_OPTIONS), unique=True, max_size=4)):
        r = RANGES[key]
        out[key] = draw(
            st.integers(
                max(int(r.low), -(2**31)) if r.low is not None else -(2**31), min(int(r.high), 2**31) if r.high is not None else 2**31
            )
        )
    for key in draw(st.lists(st.sampled_from(_FLOAT_OPTIONS), unique=True, max_size=4)):
        r = RANGES[key]
        out[key] = draw(st.floats(r.low, r.high, exclude_min=r.open_low, allow_nan=False, allow_infinity=False, width=64))
    if draw(st.booleans()):
        out["use_mmap"] = draw(st.booleans())
    if draw(st.booleans()):
        out["stop"] = draw(st.lists(stop_words, min_size=1, max_size=4))
    return out


messages = st.lists(
    st.fixed_dictionaries({"role": st.sampled_from(["system", "user", "assistant", "tool"]), "content": texts}),
    max_size=4,
)

modelfiles = st.builds(
    Modelfile,
    from_=st.sampled_from(["llama3.2", "hf.co/org/repo:Q4_K_M", "./model.gguf", "/abs/path/weights", "base:7b"]),
    parameters=parameters(),
    template=st.one_of(st.none(), texts, st.just("{{ .System }}\n{{ .Prompt }}")),
    system=st.one_of(st.none(), texts),
    messages=messages,
    license=st.lists(texts, max_size=2),
)


# -- round trip ----------------------------------------------------------------------------


@given(modelfiles)
def test_render_parse_is_identity(mf: Modelfile) -> None:
    text = render(mf)
    again = parse(text)
    assert again == mf
    assert render(again) == text


@given(modelfiles)
def test_parse_render_parse_is_identity(mf: Modelfile) -> None:
    first = parse(render(mf))
    assert parse(render(first)) == first


def test_render_example() -> None:
    mf = Modelfile(
        from_="llama3.2",
        parameters={"temperature": 0.7, "num_ctx": 8192, "stop": ["<|im_end|>", "a b"]},
        system="You are Mario.",
        messages=[{"role": "user", "content": "Hi"}],
    )
    assert render(mf) == (
        "FROM llama3.2\n"
        'SYSTEM """You are Mario."""\n'
        "PARAMETER temperature 0.7\n"
        "PARAMETER num_ctx 8192\n"
        "PARAMETER stop <|im_end|>\n"
        'PARAMETER stop "a b"\n'
        'MESSAGE user "Hi"\n'
    )


# -- parsing ---------------------------------------------------------------------------------


def test_full_example() -> None:
    mf = parse(
        '''# A comment
FROM llama3.2

  # indented comment
PARAMETER temperature 1
PARAMETER num_ctx 4096
PARAMETER stop "<|start_header_id|>"
PARAMETER stop <|eot_id|>
PARAMETER use_mmap false
TEMPLATE """{{ if .System }}<|system|>{{ .System }}{{ end }}
{{ .Prompt }}"""
SYSTEM You are a helpful assistant.
MESSAGE user Is Toronto in Canada?
MESSAGE assistant "yes"
LICENSE """MIT
License"""
ADAPTER ./lora.gguf
'''
    )
    assert mf.from_ == "llama3.2"
    assert mf.parameters == {
        "temperature": 1.0,
        "num_ctx": 4096,
        "stop": ["<|start_header_id|>", "<|eot_id|>"],
        "use_mmap": False,
    }
    assert isinstance(mf.parameters["temperature"], float)
    assert isinstance(mf.parameters["num_ctx"], int)
    assert mf.template == "{{ if .System }}<|system|>{{ .System }}{{ end }}\n{{ .Prompt }}"
    assert mf.system == "You are a helpful assistant."
    assert mf.messages == [
        {"role": "user", "content": "Is Toronto in Canada?"},
        {"role": "assistant", "content": "yes"},
    ]
    assert mf.license == ["MIT\nLicense"]
    assert mf.adapters == ["./lora.gguf"]


def test_commands_are_case_insensitive() -> None:
    mf = parse("from base\nParameter TEMPERATURE 0.5\nsystem hi\nMessage USER hello\nTeMpLaTe t")
    assert mf.from_ == "base"
    assert mf.parameters == {"temperature": 0.5}
    assert mf.system == "hi"
    assert mf.messages == [{"role": "user", "content": "hello"}]
    assert mf.template == "t"


def test_comments_and_blank_lines_only_around() -> None:
    assert parse("\n\n# c\n   \nFROM x\n# trailing\n\n") == Modelfile(from_="x")


def test_triple_quoted_multiline_keeps_inner_text() -> None:
    mf = parse('FROM x\nSYSTEM """\nline one\n# not a comment\n\n  indented\n"""\n')
    assert mf.system == "\nline one\n# not a comment\n\n  indented\n"


def test_triple_quoted_single_line() -> None:
    assert parse('FROM x\nSYSTEM """one line"""').system == "one line"
    assert parse('FROM x\nSYSTEM """"""').system == ""


def test_triple_quoted_parameter_and_message() -> None:
    mf = parse('FROM x\nPARAMETER stop """a\nb"""\nMESSAGE user """multi\nline"""')
    assert mf.parameters == {"stop": ["a\nb"]}
    assert mf.messages == [{"role": "user", "content": "multi\nline"}]


def test_repeated_stop_accumulates_in_order() -> None:
    mf = parse("FROM x\n" + "".join(f"PARAMETER stop s{i}\n" for i in range(5)))
    assert mf.parameters["stop"] == [f"s{i}" for i in range(5)]


def test_later_scalar_parameter_wins() -> None:
    assert parse("FROM x\nPARAMETER top_k 1\nPARAMETER top_k 2").parameters == {"top_k": 2}


def test_parameter_name_is_case_insensitive() -> None:
    assert parse("FROM x\nPARAMETER Num_Ctx 2048").parameters == {"num_ctx": 2048}


def test_json_quoted_values() -> None:
    mf = parse('FROM x\nPARAMETER stop "\\n\\n"\nSYSTEM "say \\"hi\\""\nMESSAGE user "a\\tb"')
    assert mf.parameters["stop"] == ["\n\n"]
    assert mf.system == 'say "hi"'
    assert mf.messages[0]["content"] == "a\tb"


def test_bool_parameter_spellings() -> None:
    for raw, value in (("true", True), ("TRUE", True), ("1", True), ("false", False), ("0", False)):
        assert parse(f"FROM x\nPARAMETER use_mmap {raw}").parameters == {"use_mmap": value}


def test_removed_and_model_settings_are_accepted() -> None:
    mf = parse("FROM x\nPARAMETER mirostat 2\nPARAMETER tfs_z 1.5\nPARAMETER backend llamacpp")
    assert mf.parameters == {"mirostat": 2, "tfs_z": 1.5, "backend": "llamacpp"}


def test_engine_settings_are_accepted_when_declared() -> None:
    text = "FROM x\nPARAMETER gpu_memory_utilization 0.85\nPARAMETER quantization fp8"
    with pytest.raises(BadRequest, match='unknown parameter "gpu_memory_utilization"'):
        parse(text)
    mf = parse(text, engine_settings=frozenset({"gpu_memory_utilization", "quantization"}))
    assert mf.parameters == {"gpu_memory_utilization": 0.85, "quantization": "fp8"}


def test_message_roles() -> None:
    for role in ("system", "user", "assistant", "tool", "USER"):
        assert parse(f"FROM x\nMESSAGE {role} hi").messages == [{"role": role.lower(), "content": "hi"}]


# -- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no FROM line"),
        ("# only a comment\n", "no FROM line"),
        ("SYSTEM hi\nPARAMETER top_k 1", "no FROM line"),
        ("FROM x\nFOO bar", 'line 2: unknown command "FOO"'),
        ("FROM x\nINSTRUCTION y", 'unknown command "INSTRUCTION"'),
        ("FROM x\nPARAMETER foo 1", 'line 2: unknown parameter "foo"'),
        ("FROM x\nPARAMETER temperature hot", 'line 2: parameter "temperature" must be of type float'),
        ("FROM x\nPARAMETER top_k 1.5", 'parameter "top_k" must be of type int'),
        ("FROM x\nPARAMETER num_ctx big", 'parameter "num_ctx" must be of type int'),
        ("FROM x\nPARAMETER use_mmap maybe", 'parameter "use_mmap" must be of type bool'),
        ("FROM x\nPARAMETER temperature", "PARAMETER needs a name and a value"),
        ("FROM x\nPARAMETER", "line 2: PARAMETER needs an argument"),
        ("FROM", "line 1: FROM needs an argument"),
        ('FROM x\nSYSTEM """never\nclosed', 'line 2: unterminated """ string'),
        ('FROM x\nTEMPLATE """{{ .Prompt }}', 'unterminated """'),
        ('FROM x\nSYSTEM """a""" trailing', 'unexpected text after closing """'),
        ("FROM x\nMESSAGE robot hello", "line 2: MESSAGE role must be one of system, user, assistant, tool"),
        ("FROM x\nMESSAGE", "MESSAGE needs an argument"),
    ],
)
def test_errors(text: str, message: str) -> None:
    with pytest.raises(BadRequest) as info:
        parse(text)
    assert message in info.value.message
    assert info.value.status == 400


# -- regressions: cases that did not round-trip before render() learnt when to use JSON strings --


@pytest.mark.parametrize(
    "mf",
    [
        pytest.param(Modelfile(from_="x", system='say "hi"'), id="system-ends-with-quote"),
        pytest.param(Modelfile(from_="x", template='{{ .Prompt }}"'), id="template-ends-with-quote"),
        pytest.param(Modelfile(from_="x", system='a """ b'), id="system-contains-triple-quote"),
        pytest.param(Modelfile(from_="x", parameters={"stop": ["\n"]}), id="stop-newline"),
        pytest.param(Modelfile(from_="x", parameters={"stop": ["\n\n"]}), id="stop-double-newline"),
        pytest.param(Modelfile(from_="x", parameters={"stop": ["User:\n"]}), id="stop-trailing-newline"),
        pytest.param(Modelfile(from_="x", messages=[{"role": "user", "content": " a\nb "}]), id="message-edge-space"),
        pytest.param(Modelfile(from_="x", messages=[{"role": "user", "content": 'a\nb"'}]), id="message-ends-quote"),
        pytest.param(Modelfile(from_="x", system="a  \nb"), id="system-trailing-space-first-line"),
        pytest.param(Modelfile(from_="x", system="a\rb"), id="system-carriage-return"),
        pytest.param(Modelfile(from_="x", license=["\n  indented\n"]), id="license-edge-newlines"),
    ],
)
def test_round_trip_regressions(mf: Modelfile) -> None:
    assert parse(render(mf)) == mf


def test_multiline_values_stay_readable() -> None:
    text = render(Modelfile(from_="x", system="line one\nline two", template="{{ .System }}\n{{ .Prompt }}"))
    assert 'SYSTEM """line one\nline two"""' in text
    assert 'TEMPLATE """{{ .System }}\n{{ .Prompt }}"""' in text


# -- regressions: parse() split lines with str.splitlines(), which also breaks on \x0b \x0c
# \x1c-\x1e \x85 \u2028 \u2029; render() writes those raw, so they became "\n" or an error.

_SPLITLINES_CASES = [
    pytest.param(Modelfile(from_="x", license=["GPL text\x0cpage two"]), id="license-form-feed"),
    pytest.param(Modelfile(from_="x", system="a\x0bb"), id="system-vertical-tab"),
    pytest.param(Modelfile(from_="x", system="a\u2028b"), id="system-line-separator"),
    pytest.param(Modelfile(from_="x", messages=[{"role": "user", "content": "a\u2028b"}]), id="message-line-separator"),
    pytest.param(Modelfile(from_="x", parameters={"stop": ["a\x85b"]}), id="stop-next-line"),
    pytest.param(Modelfile(from_="x", template="{{ .Prompt }}\u2029"), id="template-paragraph-separator"),
    pytest.param(Modelfile(from_="x", system="windows\r\nline endings"), id="system-crlf"),
    pytest.param(Modelfile(from_="x", messages=[{"role": "user", "content": "lone\rcr"}]), id="message-cr"),
]


def test_crlf_modelfile_parses_like_lf() -> None:
    text = 'FROM x\nPARAMETER top_k 3\nSYSTEM """a\nb"""\nMESSAGE user hi\n'
    assert parse(text.replace("\n", "\r\n")) == parse(text)


@pytest.mark.parametrize("mf", _SPLITLINES_CASES)
def test_splitlines_regressions(mf: Modelfile) -> None:
    assert parse(render(mf)) == mf


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("PARAMETER top_p 7", 'line 2: option "top_p" must be between 0 and 1, got 7.0'),
        ("PARAMETER num_batch 1000000000", 'line 2: option "num_batch" must be between 1 and 16384, got 1000000000'),
        ("PARAMETER temperature -5", 'line 2: option "temperature" must be >= 0, got -5.0'),
    ],
)
def test_parameters_out_of_range_are_refused_at_create(line: str, message: str) -> None:
    with pytest.raises(BadRequest) as info:
        parse(f"FROM x\n{line}")
    assert info.value.message == message
