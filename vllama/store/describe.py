"""Describe model files for the store: format, Ollama's ``details``, ``model_info`` and capabilities."""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vllama import gguf
from vllama.errors import BadRequest
from vllama.types import ModelDetails

_EMBEDDING_ARCHES = frozenset({"bert", "nomic-bert", "nomic-bert-moe", "jina-bert-v2", "t5encoder", "modern-bert"})


@dataclass
class Description:
    """What the store records about a model's weights (in its config blob)."""

    format: str
    details: ModelDetails
    info: dict[str, Any] = field(default_factory=dict)
    capabilities: list[str] = field(default_factory=list)
    template: str = ""


def human_number(n: int) -> str:
    """Ollama's parameter_size style: 134.52M, 7.6B."""
    for scale, unit in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if n >= scale:
            value = n / scale
            text = f"{value:.1f}" if unit in ("B", "T") else f"{value:.2f}".rstrip("0").rstrip(".")
            return text + unit
    return str(n)


def with_template(capabilities: list[str], template: str) -> list[str]:
    """Capabilities a chat template implies: tools if it renders them, thinking if it thinks."""
    out = [c for c in capabilities if c not in ("tools", "thinking")]
    if template and "tools" in template:
        out.append("tools")
    if template and ("<think>" in template or "enable_thinking" in template):
        out.append("thinking")
    return out


def describe_gguf(path: Path) -> Description:
    """Read a GGUF file's header; raise BadRequest if it is not valid GGUF."""
    g = gguf.read(path)
    arch = g.architecture
    info = {k: v for k, v in g.metadata.items() if v is not None and k != "tokenizer.chat_template"}
    info["general.parameter_count"] = g.parameter_count
    template = g.chat_template
    is_embedding = arch in _EMBEDDING_ARCHES or g.arch_key("pooling_type") is not None
    capabilities = with_template(["embedding"] if is_embedding else ["completion"], template)
    if "tokenizer.ggml.fim_pre_token_id" in g.metadata:
        capabilities.append("insert")
    details = ModelDetails(
        format="gguf",
        family=arch,
        families=[arch] if arch else None,
        parameter_size=human_number(g.parameter_count),
        quantization_level=g.quantization,
    )
    return Description("gguf", details, info, capabilities, template)


def describe_directory(path: Path) -> Description:
    """Describe a Hugging Face model directory (safetensors, or MLX weights)."""
    config_path = path / "config.json"
    if not config_path.is_file():
        raise BadRequest(f"{path.name}: not a model directory (no config.json)")
    config = json.loads(config_path.read_text())
    weights = sorted(path.glob("*.safetensors"))
    if not weights:
        raise BadRequest(f"{path.name}: no .safetensors weights found")
    n_params, dtype = _safetensors_params(weights)
    quant = config.get("quantization") or config.get("quantization_config") or {}
    is_mlx = isinstance(quant, dict) and "group_size" in quant and "quant_method" not in quant
    arch = (config.get("architectures") or [""])[0]
    family = config.get("model_type", "")
    text_config = config.get("text_config", config)
    info: dict[str, Any] = {
        "general.architecture": family,
        "general.architectures": arch,
        "general.parameter_count": n_params,
    }
    for src, key in (("max_position_embeddings", "context_length"), ("hidden_size", "embedding_length"),
                     ("num_hidden_layers", "block_count"), ("num_attention_heads", "attention.head_count"),
                     ("num_key_value_heads", "attention.head_count_kv"), ("vocab_size", "vocab_size"),
                     ("rope_theta", "rope.freq_base")):  # fmt: skip
        if src in text_config:
            info[f"{family}.{key}"] = text_config[src]
    template = _hf_chat_template(path)
    is_embedding = (path / "modules.json").is_file() or arch.endswith(("Model", "ForMaskedLM")) and "CausalLM" not in arch
    capabilities = with_template(["embedding"] if is_embedding else ["completion"], template)
    level = f"Q{quant['bits']}" if is_mlx and "bits" in quant else (quant.get("quant_method", "").upper() or dtype)
    details = ModelDetails(
        format="mlx" if is_mlx else "safetensors",
        family=family,
        families=[family] if family else None,
        parameter_size=human_number(n_params),
        quantization_level=level,
    )
    return Description(details.format, details, info, capabilities, template)


def _safetensors_params(files: list[Path]) -> tuple[int, str]:
    total, dtypes = 0, set()
    for f in files:
        with f.open("rb") as fh:
            raw = fh.read(8)
            if len(raw) != 8:
                raise BadRequest(f"{f.name}: invalid safetensors file")
            (n,) = struct.unpack("<Q", raw)
            if n > 100_000_000:
                raise BadRequest(f"{f.name}: invalid safetensors header")
            try:
                header = json.loads(fh.read(n))
            except ValueError:
                raise BadRequest(f"{f.name}: invalid safetensors header") from None
        for name, t in header.items():
            if name != "__metadata__":
                count = 1
                for d in t["shape"]:
                    count *= d
                total += count
                dtypes.add(t["dtype"])
    return total, "/".join(sorted(dtypes))


def _hf_chat_template(path: Path) -> str:
    jinja = path / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text()
    tok = path / "tokenizer_config.json"
    if tok.is_file():
        template = json.loads(tok.read_text()).get("chat_template", "")
        if isinstance(template, list):
            template = next((t["template"] for t in template if t.get("name") == "default"), "")
        return template or ""
    return ""
