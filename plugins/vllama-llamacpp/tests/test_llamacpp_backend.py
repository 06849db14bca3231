"""The backend's registration and its fit for hardware, without loading anything."""

from __future__ import annotations

import subprocess
import sys

from vllama.types import Device, Hardware, LoadSettings, ModelRef
from vllama_llamacpp.backend import LlamaCppBackend, gpu_layers_for, threads_for

CPU = Device(kind="cpu", name="cpu", cores=8)
GGUF = ModelRef(name="m", format="gguf", path="/m.gguf")


def test_importing_the_plugin_does_not_import_the_engine() -> None:
    code = "import sys, vllama_llamacpp\nbad = [m for m in ('llama_cpp', 'numpy', 'jinja2') if m in sys.modules]\nassert not bad, bad\n"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_registers_the_backend() -> None:
    import vllama_llamacpp

    seen = []
    vllama_llamacpp.register_backends(seen.append)
    assert seen == [LlamaCppBackend]


def test_supports_gguf_only() -> None:
    assert LlamaCppBackend.supports(ModelRef(name="m", format="safetensors", path="/m"), Hardware((CPU,))) is None


def test_scores() -> None:
    cpu_only = LlamaCppBackend.supports(GGUF, Hardware((CPU,)))
    metal = LlamaCppBackend.supports(GGUF, Hardware((CPU, Device(kind="metal", name="Apple M2"))))
    nvidia = LlamaCppBackend.supports(GGUF, Hardware((CPU, Device(kind="cuda", name="H100"))))
    assert cpu_only and metal and nvidia
    assert (cpu_only.score, metal.score, nvidia.score) == (50, 50, 10)
    assert cpu_only.parallel == 4


def test_threads_and_offload() -> None:
    assert threads_for(Hardware((CPU,)), LoadSettings()) == 8
    assert threads_for(Hardware((CPU,)), LoadSettings(num_thread=3)) == 3
    assert gpu_layers_for(Hardware((CPU,)), LoadSettings()) == 0
    assert gpu_layers_for(Hardware((CPU, Device(kind="metal", name="M2"))), LoadSettings()) == -1
