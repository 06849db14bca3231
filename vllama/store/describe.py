"""Describe model files for the store: format, Ollama's ``details``, ``model_info`` and capabilities."""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vllama import fim, gguf
from vllama.errors import BadRequest
from vllama.thinking import thinking_format
from vllama.types import ModelDetails

#: llama.cpp's pooling type of a reranker GGUF: one relevance score per query and document pair
#: (a GGUF whose classifier has one output label, such as a BERT cross-encoder, is one too).
RANK_POOLING = 4
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
    """Capabilities a chat template implies: tools if it renders them, thinking if it thinks
    (in Ollama's order: tools, insert, thinking after the weights' own)."""
    out = [c for c in capabilities if c not in ("tools", "insert", "thinking")]
    if template and "tools" in template:
        out.append("tools")
    if "insert" in capabilities:
        out.append("insert")
    if template and thinking_format(template) is not None:
        out.append("thinking")
    return out


def describe_gguf(path: Path) -> Description:
    """Read a GGUF file's header; raise BadRequest if it is not valid GGUF."""
    g = gguf.read(path, find_tokens=fim.TOKEN_TEXTS)
    arch = g.architecture
    info = {k: v for k, v in g.metadata.items() if v is not None and k != "tokenizer.chat_template"}
    info["general.parameter_count"] = g.parameter_count
    template = g.chat_template
    labels = g.arch_key("classifier.output_labels")
    is_reranker = g.arch_key("pooling_type") == RANK_POOLING or (isinstance(labels, list) and len(labels) == 1)
    is_embedding = arch in _EMBEDDING_ARCHES or g.arch_key("pooling_type") is not None
    kind = "rerank" if is_reranker else "embedding" if is_embedding else "completion"
    capabilities = with_template([kind], template)
    if kind == "completion" and (fim.find(g.tokens) or fim.declared(g.metadata)):
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
    config = _json_object(config_path)
    weights = sorted(path.glob("*.safetensors"))
    if not weights:
        raise BadRequest(f"{path.name}: no .safetensors weights found")
    n_params, dtype = _safetensors_params(weights)
    quant = config.get("quantization") or config.get("quantization_config") or {}
    quant = quant if isinstance(quant, dict) else {}
    is_mlx = isinstance(quant, dict) and "group_size" in quant and "quant_method" not in quant
    archs = config.get("architectures")
    arch = str(archs[0]) if isinstance(archs, list) and archs else ""
    family = str(config.get("model_type", ""))
    text_config = config.get("text_config", config)
    text_config = text_config if isinstance(text_config, dict) else config
    info: dict[str, Any] = {
        "general.architecture": family,
        "general.architectures": arch,
        "general.parameter_count": n_params,
    }
    for src, key in (
        ("max_position_embeddings", "context_length"),
        ("hidden_size", "embedding_length"),
        ("num_hidden_layers", "block_count"),
        ("num_attention_heads", "attention.head_count"),
        ("num_key_value_heads", "attention.head_count_kv"),
        ("vocab_size", "vocab_size"),
        ("rope_theta", "rope.freq_base"),
    ):
        if src in text_config:
            info[f"{family}.{key}"] = text_config[src]
    template = _hf_chat_template(path)
    is_embedding = (path / "modules.json").is_file() or (arch.endswith(("Model", "ForMaskedLM")) and "CausalLM" not in arch)
    labels = config.get("id2label")
    is_reranker = arch.endswith("ForSequenceClassification") and (not isinstance(labels, dict) or len(labels) == 1)
    kind = "rerank" if is_reranker else "embedding" if is_embedding else "completion"
    capabilities = with_template([kind], template)
    if kind == "completion" and fim.find(_hf_vocab(path)):
        capabilities.append("insert")
    if kind == "completion" and isinstance(config.get("vision_config"), dict):
        capabilities.append("vision")  # the model has a vision encoder: what engines can run of it is the backend's say
    level = f"Q{quant['bits']}" if is_mlx and "bits" in quant else (str(quant.get("quant_method") or "").upper() or dtype)
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
        try:
            for name, t in header.items():
                if name != "__metadata__":
                    count = 1
                    for d in t["shape"]:
                        count *= int(d)
                    total += count
                    dtypes.add(str(t["dtype"]))
        except (AttributeError, KeyError, TypeError, ValueError):
            raise BadRequest(f"{f.name}: invalid safetensors header") from None
    return total, "/".join(sorted(dtypes))


def _text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise BadRequest(f"{path.name}: not UTF-8 text") from None


def _json_object(path: Path) -> dict[str, Any]:
    """A JSON object file of the model; 400 if it is not one."""
    try:
        value = json.loads(_text(path))
    except ValueError:
        raise BadRequest(f"{path.name}: not valid JSON") from None
    if not isinstance(value, dict):
        raise BadRequest(f"{path.name}: not a JSON object")
    return value


def _hf_vocab(path: Path) -> dict[str, int]:
    """The token texts and ids of a Hugging Face tokenizer's files (``tokenizer.json``: its
    vocabulary and added tokens; ``tokenizer_config.json``: its added tokens); {} without them."""
    vocab: dict[str, int] = {}
    tokenizer = path / "tokenizer.json"
    if tokenizer.is_file():
        data = _json_object(tokenizer)
        model = data.get("model")
        entries = model.get("vocab") if isinstance(model, dict) else None
        if isinstance(entries, dict):
            vocab.update((t, i) for t, i in entries.items() if isinstance(i, int))
        elif isinstance(entries, list):  # Unigram: [text, score] at each id
            vocab.update((e[0], i) for i, e in enumerate(entries) if isinstance(e, list) and e and isinstance(e[0], str))
        added = data.get("added_tokens")
        for token in added if isinstance(added, list) else []:
            if isinstance(token, dict) and isinstance(token.get("content"), str) and isinstance(token.get("id"), int):
                vocab[token["content"]] = token["id"]
    config = path / "tokenizer_config.json"
    decoder = _json_object(config).get("added_tokens_decoder") if config.is_file() else None
    for key, token in decoder.items() if isinstance(decoder, dict) else ():
        if isinstance(token, dict) and isinstance(token.get("content"), str) and key.isdigit():
            vocab[token["content"]] = int(key)
    return vocab


def _hf_chat_template(path: Path) -> str:
    jinja = path / "chat_template.jinja"
    if jinja.is_file():
        return _text(jinja)
    tok = path / "tokenizer_config.json"
    if tok.is_file():
        template = _json_object(tok).get("chat_template", "")
        if isinstance(template, list):
            template = next((t.get("template") for t in template if isinstance(t, dict) and t.get("name") == "default"), "")
        return template if isinstance(template, str) else ""
    return ""
