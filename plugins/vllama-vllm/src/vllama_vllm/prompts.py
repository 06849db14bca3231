"""Prompts as token ids: chat turns through the model's own chat template (or the
Modelfile's Jinja template), completions as Ollama builds them."""

from __future__ import annotations

from typing import Any

from vllama import fim
from vllama.chat_inputs import generate_messages, is_jinja, template_messages, template_tools
from vllama.errors import Unsupported
from vllama.types import ChatRequest, GenerateRequest, Message, ModelRef, Tool


class PromptBuilder:
    """Turns requests into token ids with the engine's tokenizer."""

    def __init__(self, tokenizer: Any, ref: ModelRef) -> None:
        self._tokenizer = tokenizer
        self._ref = ref
        self._template = ref.template if is_jinja(ref.template) else None
        self.has_template = bool(self._template or getattr(tokenizer, "chat_template", None))
        self._fim = fim.find(tokenizer.get_vocab())
        self._bos = fim.hf_bos(tokenizer) if self._fim else []

    def chat(self, request: ChatRequest) -> list[int]:
        if not self.has_template:
            raise Unsupported(f'"{self._ref.name}" does not support chat')
        if any(m.images for m in request.messages):
            raise Unsupported(f'"{self._ref.name}" does not support images')
        return self._render(request.messages, request.tools)

    def generate(self, request: GenerateRequest) -> list[int]:
        if request.images:
            raise Unsupported(f'"{self._ref.name}" does not support images')
        if fim.wanted(request):
            if self._fim is None:
                raise Unsupported(f'"{self._ref.name}" does not support insert')
            return fim.prompt(self._fim, request, lambda text: self.tokenize(text, special=False), bos=self._bos)
        if request.raw or not self.has_template:
            if not request.prompt:
                return list(request.context)
            return list(request.context) + self.tokenize(request.prompt, special=not request.context)
        return list(request.context) + self._render(generate_messages(request), [])

    def end_tokens(self, request: GenerateRequest | ChatRequest) -> frozenset[int]:
        """Tokens that end the reply besides the model's end of text: a middle's."""
        return fim.ends(self._fim, request)

    def tokenize(self, text: str, *, special: bool) -> list[int]:
        return list(self._tokenizer.encode(text, add_special_tokens=special))

    def _render(self, messages: list[Message], tools: list[Tool]) -> list[int]:
        text = self._tokenizer.apply_chat_template(
            template_messages(messages),
            tools=template_tools(tools),
            chat_template=self._template,
            add_generation_prompt=True,
            tokenize=False,
        )  # fmt: skip
        return self.tokenize(text, special=False)
