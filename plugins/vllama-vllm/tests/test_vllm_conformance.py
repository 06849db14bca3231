"""The core's conformance suite on vLLM's CPU build: SmolLM2 (safetensors) for generation,
all-MiniLM-L6-v2 for embeddings."""

from __future__ import annotations

import pytest

from vllama.engine import Backend, Engine
from vllama.errors import Unsupported
from vllama.testing.conformance import collect
from vllama.testing.suite import Conformance
from vllama.types import EmbedRequest, GenerateRequest, LoadSettings, ModelRef
from vllama_vllm.backend import VllmBackend

pytestmark = pytest.mark.engine


class TestVllmConformance(Conformance):
    backend_class = VllmBackend

    async def test_embeddings(self, backend: type[Backend], engine: Engine, model: ModelRef) -> None:
        """One vLLM engine either generates or pools: a chat model refuses to embed, clearly."""
        with pytest.raises(Unsupported, match="does not support embeddings"):
            await engine.embed(EmbedRequest(inputs=["The sky is blue."]))


#: What an embedding model must do; the suite's generation tests do not apply to it.
EMBEDDING_TESTS = frozenset({"test_supports_its_model", "test_info", "test_embeddings", "test_generation_is_refused"})


class TestVllmEmbeddingConformance(Conformance):
    backend_class = VllmBackend
    model_fixture = "minilm"
    load_settings = LoadSettings(num_ctx=256, parallel=4, num_thread=1)

    @pytest.fixture(autouse=True)
    def _embedding_tests_only(self, request: pytest.FixtureRequest) -> None:
        if request.function.__name__ not in EMBEDDING_TESTS:
            pytest.skip("an embedding model does not generate")

    async def test_generation_is_refused(self, engine: Engine) -> None:
        with pytest.raises(Unsupported, match="does not support generate"):
            await collect(engine.generate(GenerateRequest(prompt="Hello")))
