"""Images a request carries: checked once, before any engine sees them, and opened for engines.

Every engine that takes images gets pictures that decode, within bounds that keep one request
from claiming unbounded memory: at most :data:`MAX_IMAGES` per request and
:data:`MAX_PIXELS` per image (a small compressed file can hold a huge picture). A bad image is
a 400 that says which image and what is wrong with it. PIL is imported only when a request
has images.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from vllama.errors import BadRequest
from vllama.types import ChatRequest, GenerateRequest

if TYPE_CHECKING:
    from PIL.Image import Image

#: Images one request may carry, all messages together.
MAX_IMAGES = 16
#: Pixels one image may have once decoded (32 Mi: an 8K frame fits).
MAX_PIXELS = 32 * 1024 * 1024


def request_images(request: GenerateRequest | ChatRequest) -> list[bytes]:
    """The images of a request, in the order the prompt shows them."""
    if isinstance(request, ChatRequest):
        return [image for m in request.messages for image in m.images]
    return list(request.images)


def check(images: list[bytes]) -> None:
    """Raise :class:`~vllama.errors.BadRequest` unless every image decodes within the bounds."""
    if len(images) > MAX_IMAGES:
        raise BadRequest(f"too many images: {len(images)} (at most {MAX_IMAGES} per request)")
    for i, data in enumerate(images):
        open_image(data, index=i).close()


def open_image(data: bytes, *, index: int = 0) -> Image:
    """Decode one image (fully, so that a truncated file fails here) as RGB."""
    from PIL import Image, UnidentifiedImageError

    which = f"image {index + 1}"
    if not data:
        raise BadRequest(f"invalid image data: {which} is empty")
    try:
        with Image.open(io.BytesIO(data)) as img:
            width, height = img.size
            if width < 1 or height < 1:
                raise BadRequest(f"invalid image data: {which} has no pixels ({width}x{height})")
            if width * height > MAX_PIXELS:
                raise BadRequest(f"invalid image data: {which} is too large ({width}x{height}; at most {MAX_PIXELS} pixels)")
            return img.convert("RGB")
    except UnidentifiedImageError:
        raise BadRequest(f"invalid image data: {which} is not an image format that can be decoded") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise BadRequest(f"invalid image data: {which} could not be decoded ({e})") from None
