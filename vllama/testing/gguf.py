"""Write small GGUF files for tests: real headers, real tensor layout, zero weights."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

_TYPES = {bool: 7, int: 4, float: 6, str: 8}


def _string(s: str) -> bytes:
    data = s.encode()
    return struct.pack("<Q", len(data)) + data


def _value(v: Any) -> bytes:
    if isinstance(v, bool):
        return struct.pack("<I?", 7, v)
    if isinstance(v, int):
        return struct.pack("<Iq", 11, v) if v < 0 or v >= 2**32 else struct.pack("<II", 4, v)
    if isinstance(v, float):
        return struct.pack("<If", 6, v)
    if isinstance(v, str):
        return struct.pack("<I", 8) + _string(v)
    if isinstance(v, list):
        kind = _TYPES[type(v[0])] if v else 8
        body = b"".join(_value(x)[4:] for x in v)
        return struct.pack("<IIQ", 9, kind, len(v)) + body
    raise TypeError(f"unsupported GGUF value {v!r}")


def write_gguf(path: Path, metadata: dict[str, Any], tensors: dict[str, tuple[int, ...]] | None = None) -> Path:
    """Write a GGUF v3 file with F32 tensors of the given shapes (all zeros)."""
    tensors = tensors if tensors is not None else {"token_embd.weight": (8, 16)}
    out = bytearray(b"GGUF") + struct.pack("<IQQ", 3, len(tensors), len(metadata))
    for key, value in metadata.items():
        out += _string(key) + _value(value)
    offset = 0
    for name, shape in tensors.items():
        out += _string(name) + struct.pack("<I", len(shape)) + struct.pack(f"<{len(shape)}Q", *shape)
        out += struct.pack("<IQ", 0, offset)
        size = 4
        for d in shape:
            size *= d
        offset += (size + 31) // 32 * 32
    out += b"\0" * ((32 - len(out) % 32) % 32)
    out += b"\0" * offset
    path.write_bytes(bytes(out))
    return path


def tiny_model(path: Path, *, template: str = "{{ messages }}", arch: str = "llama", **extra: Any) -> Path:
    """A tiny GGUF that describes itself like a chat model (for the echo backend)."""
    metadata: dict[str, Any] = {
        "general.architecture": arch,
        "general.name": "tiny",
        "general.file_type": 0,
        f"{arch}.context_length": 2048,
        f"{arch}.embedding_length": 16,
    }
    if template:
        metadata["tokenizer.chat_template"] = template
    metadata.update(extra)
    return write_gguf(path, metadata)
