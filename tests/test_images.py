"""The core's image check: every image an engine gets decodes, within bounds; anything else is
a 400 that names the image and the problem."""

from __future__ import annotations

import io

import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from vllama import images
from vllama.errors import BadRequest
from vllama.types import ChatRequest, GenerateRequest, Message


def encoded(image: Image.Image, fmt: str = "PNG") -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt)
    return out.getvalue()


PNG = encoded(Image.new("RGB", (4, 3), (1, 2, 3)))


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "WEBP", "BMP"])
def test_common_formats_open_as_rgb(fmt: str) -> None:
    image = images.open_image(encoded(Image.new("L", (5, 7), 128), fmt))
    assert image.mode == "RGB" and image.size == (5, 7)


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"", "invalid image data: image 2 is empty"),
        (b"GIF89a but nothing else", "invalid image data: image 2 "),
        (b"plain text", "invalid image data: image 2 is not an image format that can be decoded"),
        (PNG[:-30], "invalid image data: image 2 could not be decoded"),
        (encoded(Image.new("1", (6000, 6000))), "invalid image data: image 2 is too large (6000x6000; at most 33554432 pixels)"),
    ],
)
def test_bad_images_name_the_image_and_the_problem(data: bytes, problem: str) -> None:
    with pytest.raises(BadRequest) as refused:
        images.check([PNG, data])
    assert problem in str(refused.value)


def test_count_is_bounded_before_anything_decodes() -> None:
    images.check([PNG] * images.MAX_IMAGES)
    with pytest.raises(BadRequest, match=r"too many images: 17 \(at most 16 per request\)"):
        images.check([b"never decoded"] * (images.MAX_IMAGES + 1))


@given(st.binary(max_size=512))
def test_any_bytes_decode_or_are_a_400(data: bytes) -> None:
    try:
        images.check([data])
    except BadRequest as e:
        assert str(e).startswith("invalid image data: image 1 ")


def test_request_images_in_prompt_order() -> None:
    chat = ChatRequest(messages=[Message(role="user", images=[b"a", b"b"]), Message(role="assistant"), Message(role="user", images=[b"c"])])
    assert images.request_images(chat) == [b"a", b"b", b"c"]
    assert images.request_images(GenerateRequest(prompt="x", images=[b"d"])) == [b"d"]
