"""Prompts as token ids: chat turns through the model's own chat template (or the
Modelfile's Jinja template), completions as Ollama builds them."""

from __future__ import annotations

from typing import Any

from vllama.chat_inputs import generate_messages, is_jinja, template_kwargs, template_messages, template_tools
from vllama.errors import Unsupported
from vllama.thinking import ThinkingFormat, thinking_format
from vllama.types import ChatRequest, GenerateRequest, Message, ModelRef, Think, Tool


class PromptBuilder:
    """Turns requests into token ids with the engine's tokenizer."""

    def __init__(self, tokenizer: Any, ref: ModelRef) -> None:
        self._tokenizer = tokenizer
        self._ref = ref
        self._template = ref.template if is_jinja(ref.template) else None
        self.has_template = bool(self._template or getattr(tokenizer, "chat_template", None))
        source = self._template or getattr(tokenizer, "chat_template", None)
        #: How the model marks its thinking, from the template in use.
        self.thinking_format: ThinkingFormat | None = thinking_format(source) if isinstance(source, str) else None

    def chat(self, request: ChatRequest) -> list[int]:
        if not self.has_template:
            raise Unsupported(f'"{self._ref.name}" does not support chat')
        if any(m.images for m in request.messages):
            raise Unsupported(f'"{self._ref.name}" does not support images')
        return self._render(request.messages, request.tools, request.think)

    def generate(self, request: GenerateRequest) -> list[int]:
        if request.images:
            raise Unsupported(f'"{self._ref.name}" does not support images')
        if request.suffix:
            raise Unsupported(f'"{self._ref.name}" does not support insert')
        if request.raw or not self.has_template:
            if not request.prompt:
                return list(request.context)
            return list(request.context) + self.tokenize(request.prompt, special=not request.context)
        return list(request.context) + self._render(generate_messages(request), [], request.think)

    def tokenize(self, text: str, *, special: bool) -> list[int]:
        return list(self._tokenizer.encode(text, add_special_tokens=special))

    def text(self, tokens: list[int]) -> str:
        """The text of ``tokens``, special tokens included."""
        return str(self._tokenizer.decode(tokens, skip_special_tokens=False))

    def _render(self, messages: list[Message], tools: list[Tool], think: Think) -> list[int]:
        text = self._tokenizer.apply_chat_template(
            template_messages(messages),
            tools=template_tools(tools),
            chat_template=self._template,
            add_generation_prompt=True,
            tokenize=False,
            **template_kwargs(think),
        )  # fmt: skip
        return self.tokenize(text, special=False)
