"""Pulling models: from Ollama's registry (``llama3.2``, ``registry.ollama.ai/USER/MODEL``), and
from the Hugging Face Hub: ``hf.co/ORG/REPO:QUANT`` (one GGUF file), ``ORG/REPO`` (a safetensors or
MLX snapshot) and the curated short names of the library."""

from vllama.pull.job import PullJob, prepare
from vllama.pull.progress import Progress

__all__ = ["Progress", "PullJob", "prepare"]
