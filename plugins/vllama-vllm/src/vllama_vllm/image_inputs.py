"""Images as vLLM takes them: the conversation rendered with the placeholders (or image parts)
this model's chat template expects, and the pictures as vLLM's multimodal data.

Both come from vLLM's own chat parser (``parse_chat_messages``), so that a model gets its
images exactly as vLLM's OpenAI server would give them; vLLM's processor then expands each
placeholder into the model's image tokens.
"""

from __future__ import annotations

import itertools
from typing import Any

from vllama.errors import BadRequest, EngineError
from vllama.images import open_image
from vllama.types import Message


class ImageInputs:
    """Renders messages with images for one model (its vLLM model config and tokenizer)."""

    def __init__(self, model_config: Any, tokenizer: Any) -> None:
        self._config = model_config
        self._tokenizer = tokenizer

    def place(
        self, conversation: list[dict[str, Any]], messages: list[Message], template: str | None
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """``conversation`` (the template's view of ``messages``) with each message's content as
        vLLM's parser writes it, each message's images before its text; and the images as
        vLLM's ``multi_modal_data``, in the order the placeholders appear."""
        from vllm.exceptions import VLLMClientError
        from vllm.renderers.chat_utils import parse_chat_messages
        from vllm.renderers.hf import resolve_chat_template_content_format

        content_format = resolve_chat_template_content_format(template, None, "auto", self._tokenizer, model_config=self._config)
        index = itertools.count()
        parts = [
            {"role": m.role, "content": [*(_image_part(data, next(index)) for data in m.images), _text_part(m.content)]} for m in messages
        ]
        try:
            parsed, mm_data, _ = parse_chat_messages(parts, self._config, content_format)
        except VLLMClientError as e:  # more images than the model takes in one prompt
            raise BadRequest(str(e)) from None
        if len(parsed) != len(conversation) or not mm_data:
            raise EngineError("vLLM's chat parser did not keep the conversation's shape")
        return [{**turn, "content": p["content"]} for turn, p in zip(conversation, parsed, strict=True)], dict(mm_data)


def _image_part(data: bytes, index: int) -> dict[str, Any]:
    return {"type": "image_pil", "image_pil": open_image(data, index=index)}


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}
