"""Images end to end on vLLM (CPU build), through the official ``ollama`` and ``openai`` clients.

The model is the test VLM of :mod:`vllama.testing.vlm`: SmolLM2-135M's real text weights
behind a small, randomly initialised vision tower. It cannot describe an image, so these
tests check the plumbing: the image reaches the model (the prompt grows by its tokens and two
images give two answers at temperature 0), and a bad image is a clear 400.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator

import httpx
import ollama
import openai
import pytest
from PIL import Image

from vllama.testing.capabilities import mismatches
from vllama.testing.hf_models import smollm2_safetensors
from vllama.testing.server import ServerProcess, create_from_dir
from vllama.testing.vlm import IMAGE_SEQ_LEN, smolvlm_safetensors

pytestmark = pytest.mark.engine

VLM = "smolvlm-test"
#: The same model with a context that fits the text of a prompt but not the tokens of 16 images too.
SHORT = "smolvlm-short"
SHORT_CTX = 256
TEXT_ONLY = "smollm2-hf"
ASK = "What is in this picture?"
GREEDY = {"temperature": 0, "num_predict": 16}


def png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


#: Two pictures that differ everywhere: a red square and a black-and-white checkerboard.
RED = png(Image.new("RGB", (96, 96), (220, 20, 20)))
CHECKS = png(
    Image.frombytes("L", (96, 96), bytes(255 * (((x // 12) + (y // 12)) % 2) for y in range(96) for x in range(96))).convert("RGB")
)


def data_url(image: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(image).decode()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {"VLLAMA_PLUGINS": "vllm", "VLLAMA_NUM_PARALLEL": "2", "VLLAMA_CONTEXT_LENGTH": "2048"}
    with ServerProcess(tmp_path_factory.mktemp("images") / "models", env) as server:
        create_from_dir(server.url, VLM, smolvlm_safetensors(), parameters={"num_thread": 1})
        create_from_dir(server.url, TEXT_ONLY, smollm2_safetensors(), parameters={"num_thread": 1})
        create_from_dir(server.url, SHORT, smolvlm_safetensors(), parameters={"num_thread": 1, "num_ctx": SHORT_CTX})
        yield server


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> ollama.Client:
    return ollama.Client(host=server.url, timeout=600)


@pytest.fixture(scope="module")
def oai(server: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", timeout=600)


def chat(client: ollama.Client, *images: bytes) -> ollama.ChatResponse:
    message = {"role": "user", "content": ASK, **({"images": list(images)} if images else {})}
    return client.chat(VLM, messages=[message], options=GREEDY)


def openai_chat(oai: openai.OpenAI, image: bytes) -> openai.types.chat.ChatCompletion:
    parts = [{"type": "text", "text": ASK}, {"type": "image_url", "image_url": {"url": data_url(image)}}]
    return oai.chat.completions.create(model=VLM, messages=[{"role": "user", "content": parts}], temperature=0, max_tokens=16)  # type: ignore[misc, list-item]


def test_capabilities_list_vision_for_the_vlm_only(client: ollama.Client) -> None:
    assert "vision" in (client.show(VLM).capabilities or [])
    assert "vision" not in (client.show(TEXT_ONLY).capabilities or [])


def test_what_is_listed_is_what_works(server: ServerProcess) -> None:
    assert mismatches(server.url, VLM) == []


def test_a_text_only_model_refuses_images_before_loading(client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as refused:
        client.chat(TEXT_ONLY, messages=[{"role": "user", "content": ASK, "images": [RED]}])
    assert refused.value.status_code == 400
    assert "does not support images" in refused.value.error
    assert TEXT_ONLY not in [m.model for m in client.ps().models]


def test_ollama_chat_image_reaches_the_model(client: ollama.Client) -> None:
    plain, red, checks = chat(client), chat(client, RED), chat(client, CHECKS)
    # The image's placeholder became its image tokens (and their markers).
    assert (red.prompt_eval_count or 0) - (plain.prompt_eval_count or 0) >= IMAGE_SEQ_LEN
    assert red.prompt_eval_count == checks.prompt_eval_count
    assert red.message.content and checks.message.content
    assert red.message.content != checks.message.content
    two = chat(client, RED, CHECKS)
    assert (two.prompt_eval_count or 0) - (plain.prompt_eval_count or 0) >= 2 * IMAGE_SEQ_LEN


def test_ollama_generate_image_reaches_the_model(client: ollama.Client) -> None:
    plain = client.generate(VLM, ASK, options=GREEDY)
    red = client.generate(VLM, ASK, images=[RED], options=GREEDY)
    checks = client.generate(VLM, ASK, images=[CHECKS], options=GREEDY)
    assert (red.prompt_eval_count or 0) - (plain.prompt_eval_count or 0) >= IMAGE_SEQ_LEN
    assert red.response != checks.response
    # A generate request is one user turn: the same prompt as the chat with the same image.
    assert red.response == chat(client, RED).message.content


def test_openai_image_part_reaches_the_model(client: ollama.Client, oai: openai.OpenAI) -> None:
    red, checks = openai_chat(oai, RED), openai_chat(oai, CHECKS)
    assert red.usage and checks.usage
    assert red.usage.prompt_tokens == chat(client, RED).prompt_eval_count
    assert red.choices[0].message.content != checks.choices[0].message.content
    # The same image and text through either API is the same prompt, so the same greedy answer.
    assert red.choices[0].message.content == chat(client, RED).message.content


@pytest.mark.parametrize(
    ("image", "problem"),
    [
        (b"this is not a picture", "image 1 is not an image format that can be decoded"),
        (RED[: len(RED) // 2], "image 1 could not be decoded"),
        (png(Image.new("1", (8192, 8192))), "image 1 is too large (8192x8192"),
    ],
)
def test_a_bad_image_is_a_400_naming_the_problem(client: ollama.Client, oai: openai.OpenAI, image: bytes, problem: str) -> None:
    with pytest.raises(ollama.ResponseError) as refused:
        chat(client, image)
    assert refused.value.status_code == 400
    assert problem in refused.value.error
    with pytest.raises(openai.BadRequestError) as bad:
        openai_chat(oai, image)
    assert problem in str(bad.value)


def test_too_many_images_is_a_400(server: ServerProcess) -> None:
    many = [base64.b64encode(RED).decode()] * 17
    response = httpx.post(f"{server.url}/api/generate", json={"model": VLM, "prompt": ASK, "images": many, "stream": False}, timeout=60)
    assert response.status_code == 400
    assert "too many images: 17 (at most 16 per request)" in response.json()["error"]


def test_an_empty_image_is_a_400(server: ServerProcess) -> None:
    response = httpx.post(f"{server.url}/api/generate", json={"model": VLM, "prompt": ASK, "images": [""], "stream": False}, timeout=60)
    assert response.status_code == 400
    assert "image 1 is empty" in response.json()["error"]


def test_image_tokens_past_the_context_are_a_400(client: ollama.Client) -> None:
    fits = client.chat(SHORT, messages=[{"role": "user", "content": ASK}], options={"temperature": 0, "num_predict": 2})
    many = [RED] * 16
    assert (fits.prompt_eval_count or 0) < SHORT_CTX < (fits.prompt_eval_count or 0) + len(many) * IMAGE_SEQ_LEN
    with pytest.raises(ollama.ResponseError) as refused:
        client.chat(SHORT, messages=[{"role": "user", "content": ASK, "images": many}], options=GREEDY, keep_alive=0)
    assert refused.value.status_code == 400
    assert f"longer than the maximum model length of {SHORT_CTX}" in refused.value.error


def test_a_raw_prompt_with_images_is_a_400(client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as refused:
        client.generate(VLM, ASK, raw=True, images=[RED], options=GREEDY)
    assert refused.value.status_code == 400
    assert "needs its chat template for images" in refused.value.error
