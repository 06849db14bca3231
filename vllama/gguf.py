"""A small GGUF reader: metadata, tensor shapes and an integrity check, without llama.cpp.

The model store uses it to describe GGUF models (/api/tags, /api/show) and to refuse a file
that is not GGUF or is truncated before any engine sees it.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from vllama.errors import BadRequest

MAGIC = b"GGUF"

# value types: (struct format, size)
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9
_TOKENS = "tokenizer.ggml.tokens"

#: ggml tensor types: (elements per block, bytes per block).
_BLOCKS = {
    0: (1, 4),
    1: (1, 2),
    2: (32, 18),
    3: (32, 20),
    6: (32, 22),
    7: (32, 24),
    8: (32, 34),
    9: (32, 36),
    10: (256, 84),
    11: (256, 110),
    12: (256, 144),
    13: (256, 176),
    14: (256, 210),
    15: (256, 292),
    16: (256, 66),
    17: (256, 74),
    18: (256, 98),
    19: (256, 50),
    20: (32, 18),
    21: (256, 110),
    22: (256, 82),
    23: (256, 136),
    24: (1, 1),
    25: (1, 2),
    26: (1, 4),
    27: (1, 8),
    28: (1, 8),
    29: (256, 56),
    30: (1, 2),
    34: (256, 54),
    35: (256, 66),
    39: (32, 17),
}

#: llama.cpp's ``general.file_type`` values, as Ollama names quantization levels.
FILE_TYPES = {
    0: "F32",
    1: "F16",
    2: "Q4_0",
    3: "Q4_1",
    7: "Q8_0",
    8: "Q5_0",
    9: "Q5_1",
    10: "Q2_K",
    11: "Q3_K_S",
    12: "Q3_K_M",
    13: "Q3_K_L",
    14: "Q4_K_S",
    15: "Q4_K_M",
    16: "Q5_K_S",
    17: "Q5_K_M",
    18: "Q6_K",
    19: "IQ2_XXS",
    20: "IQ2_XS",
    21: "Q2_K_S",
    22: "IQ3_XS",
    23: "IQ3_XXS",
    24: "IQ1_S",
    25: "IQ4_NL",
    26: "IQ3_S",
    27: "IQ3_M",
    28: "IQ2_S",
    29: "IQ2_M",
    30: "IQ4_XS",
    31: "IQ1_M",
    32: "BF16",
    36: "TQ1_0",
    37: "TQ2_0",
    38: "MXFP4",
}

#: Arrays longer than this (token lists) are skipped, not kept in memory.
_MAX_KEPT_ARRAY = 64


class InvalidGGUF(BadRequest):
    """The file is not a readable GGUF model."""


@dataclass
class GGUFFile:
    """What a GGUF file's header says."""

    version: int
    metadata: dict[str, Any]
    #: name -> (shape, ggml type, offset in the data section)
    tensors: dict[str, tuple[tuple[int, ...], int, int]] = field(default_factory=dict)
    data_offset: int = 0
    file_size: int = 0
    #: The ids of the tokens :func:`read` was asked to find that the vocabulary has (text to id).
    tokens: dict[str, int] = field(default_factory=dict)

    @property
    def architecture(self) -> str:
        return str(self.metadata.get("general.architecture", ""))

    def arch_key(self, suffix: str) -> Any:
        return self.metadata.get(f"{self.architecture}.{suffix}")

    @property
    def parameter_count(self) -> int:
        return sum(math.prod(shape) for shape, _, _ in self.tensors.values())

    @property
    def quantization(self) -> str:
        ft = self.metadata.get("general.file_type")
        return FILE_TYPES.get(ft, f"type {ft}") if ft is not None else "unknown"

    @property
    def chat_template(self) -> str:
        return str(self.metadata.get("tokenizer.chat_template", ""))

    def data_end(self) -> int | None:
        """Where the last tensor's data ends, or None if a tensor type is unknown."""
        end = 0
        for shape, ggml_type, offset in self.tensors.values():
            if ggml_type not in _BLOCKS:
                return None
            per_block, block_bytes = _BLOCKS[ggml_type]
            end = max(end, offset + math.prod(shape) // per_block * block_bytes)
        return self.data_offset + end


def read(path: str | Path, *, check_size: bool = True, find_tokens: Collection[str] = ()) -> GGUFFile:
    """Read a GGUF header. Raise :class:`InvalidGGUF` if it is not GGUF or is truncated.

    ``find_tokens``: token texts to look up in the vocabulary (``tokenizer.ggml.tokens``, a
    list otherwise skipped); those found are in :attr:`GGUFFile.tokens`."""
    path = Path(path)
    size = path.stat().st_size
    with path.open("rb") as f:
        try:
            gguf = _read_header(f, {t.encode(): t for t in find_tokens})
        except (struct.error, UnicodeError, EOFError, OverflowError, MemoryError, ValueError, TypeError, RecursionError, OSError) as e:
            if isinstance(e, InvalidGGUF):
                raise
            raise InvalidGGUF(f"{path.name}: invalid GGUF file: truncated or corrupt header ({e})") from None
    gguf.file_size = size
    if check_size:
        end = gguf.data_end()
        if end is not None and end > size:
            raise InvalidGGUF(f"{path.name}: GGUF file is truncated: tensor data needs {end} bytes, file has {size}")
    return gguf


def is_gguf(path: str | Path) -> bool:
    with Path(path).open("rb") as f:
        return f.read(4) == MAGIC


def _read_header(f: BinaryIO, find_tokens: dict[bytes, str]) -> GGUFFile:
    if f.read(4) != MAGIC:
        raise InvalidGGUF("not a GGUF file (bad magic number)")
    (version,) = _unpack(f, "<I")
    if version not in (2, 3):
        raise InvalidGGUF(f"unsupported GGUF version {version}")
    n_tensors, n_kv = _unpack(f, "<QQ")
    if n_tensors > 1_000_000 or n_kv > 1_000_000:
        raise InvalidGGUF("invalid GGUF file: implausible header counts")
    metadata: dict[str, Any] = {}
    tokens: dict[str, int] = {}
    for _ in range(n_kv):
        key = _string(f)
        (vtype,) = _unpack(f, "<I")
        if key == _TOKENS and vtype == _ARRAY and find_tokens:
            metadata[key], tokens = _token_list(f, find_tokens)
        else:
            metadata[key] = _value(f, vtype)
    tensors = {}
    for _ in range(n_tensors):
        name = _string(f)
        (n_dims,) = _unpack(f, "<I")
        if n_dims > 8:
            raise InvalidGGUF("invalid GGUF file: bad tensor rank")
        shape = _unpack(f, f"<{n_dims}Q")
        ggml_type, offset = _unpack(f, "<IQ")
        tensors[name] = (tuple(shape), ggml_type, offset)
    alignment = metadata.get("general.alignment", 32)
    if not isinstance(alignment, int) or isinstance(alignment, bool) or alignment <= 0 or alignment & (alignment - 1):
        raise InvalidGGUF("invalid GGUF file: general.alignment must be a power of two")
    pos = f.tell()
    return GGUFFile(version, metadata, tensors, data_offset=(pos + alignment - 1) // alignment * alignment, tokens=tokens)


def _token_list(f: BinaryIO, wanted: dict[bytes, str]) -> tuple[Any, dict[str, int]]:
    """The vocabulary's value (as :func:`_value` gives it) and the ids of the ``wanted`` tokens
    in it; a long list is scanned without being kept."""
    item_type, n = _unpack(f, "<IQ")
    if item_type != _STRING or n <= _MAX_KEPT_ARRAY:
        f.seek(-12, 1)
        value = _value(f, _ARRAY)
        found = {wanted[t.encode()]: i for i, t in enumerate(value or []) if isinstance(t, str) and t.encode() in wanted}
        return value, found
    if n > 1 << 32:
        raise InvalidGGUF("invalid GGUF file: unsupported or implausible array")
    lengths = {len(t) for t in wanted}
    found = {}
    for i in range(n):
        (length,) = _unpack(f, "<Q")
        if length in lengths:
            text = wanted.get(f.read(length))
            if text is not None:
                found.setdefault(text, i)
        else:
            f.seek(length, 1)
    return None, found


def _unpack(f: BinaryIO, fmt: str) -> tuple[Any, ...]:
    size = struct.calcsize(fmt)
    data = f.read(size)
    if len(data) != size:
        raise EOFError("unexpected end of file")
    return struct.unpack(fmt, data)


def _string(f: BinaryIO) -> str:
    (n,) = _unpack(f, "<Q")
    if n > 1 << 26:
        raise InvalidGGUF("invalid GGUF file: implausible string length")
    data = f.read(n)
    if len(data) != n:
        raise EOFError("unexpected end of file")
    return data.decode("utf-8")


def _value(f: BinaryIO, vtype: int) -> Any:
    if vtype in _SCALARS:
        return _unpack(f, _SCALARS[vtype])[0]
    if vtype == _STRING:
        return _string(f)
    if vtype == _ARRAY:
        item_type, n = _unpack(f, "<IQ")
        if item_type == _ARRAY or n > 1 << 32:
            raise InvalidGGUF("invalid GGUF file: unsupported or implausible array")
        if item_type in _SCALARS and n > _MAX_KEPT_ARRAY:
            f.seek(struct.calcsize(_SCALARS[item_type]) * n, 1)
            return None
        if item_type == _STRING and n > _MAX_KEPT_ARRAY:
            for _ in range(n):
                (length,) = _unpack(f, "<Q")
                f.seek(length, 1)
            return None
        return [_value(f, item_type) for _ in range(n)]
    raise InvalidGGUF(f"invalid GGUF file: unknown value type {vtype}")
