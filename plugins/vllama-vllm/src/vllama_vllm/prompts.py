"""Prompts as token ids: chat turns through the model's own chat template (or the
Modelfile's Jinja template), completions as Ollama builds them; images as vLLM's multimodal
data, with their placeholders in the rendered prompt."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vllama import fim
from vllama.chat_inputs import generate_messages, is_jinja, template_kwargs, template_messages, template_tools
from vllama.errors import Unsupported
from vllama.thinking import ThinkingFormat, thinking_format
from vllama.types import ChatRequest, GenerateRequest, Message, ModelRef, Think, Tool
from vllama_vllm.image_inputs import ImageInputs


@dataclass
class Prompt:
    """A prompt for vLLM: token ids (one placeholder per image) and vLLM's multimodal data."""

    tokens: list[int]
    multi_modal_data: dict[str, Any] = field(default_factory=dict)


class PromptBuilder:
    """Turns requests into token ids with the engine's tokenizer; ``images`` renders images
    for a model that takes them (None: images are refused)."""

    def __init__(self, tokenizer: Any, ref: ModelRef, images: ImageInputs | None = None) -> None:
        self._tokenizer = tokenizer
        self._ref = ref
        self._template = ref.template if is_jinja(ref.template) else None
        self._images = images
        self.has_template = bool(self._template or getattr(tokenizer, "chat_template", None))
        self._fim = fim.find(tokenizer.get_vocab())
        self._bos = fim.hf_bos(tokenizer) if self._fim else []
        source = self._template or getattr(tokenizer, "chat_template", None)
        #: How the model marks its thinking, from the template in use.
        self.thinking_format: ThinkingFormat | None = thinking_format(source) if isinstance(source, str) else None

    def chat(self, request: ChatRequest) -> Prompt:
        if not self.has_template:
            raise Unsupported(f'"{self._ref.name}" does not support chat')
        return self._render(request.messages, request.tools, request.think)

    def generate(self, request: GenerateRequest) -> Prompt:
        if fim.wanted(request):
            if self._fim is None:
                raise Unsupported(f'"{self._ref.name}" does not support insert')
            if request.images:
                raise Unsupported(f'"{self._ref.name}" cannot take images with a suffix')
            return Prompt(fim.prompt(self._fim, request, lambda text: self.tokenize(text, special=False), bos=self._bos))
        if request.raw or not self.has_template:
            if request.images:
                raise Unsupported(f'"{self._ref.name}" needs its chat template for images: they cannot go with a raw prompt')
            if not request.prompt:
                return Prompt(list(request.context))
            return Prompt(list(request.context) + self.tokenize(request.prompt, special=not request.context))
        rendered = self._render(generate_messages(request), [], request.think)
        return Prompt(list(request.context) + rendered.tokens, rendered.multi_modal_data)

    def end_tokens(self, request: GenerateRequest | ChatRequest) -> frozenset[int]:
        """Tokens that end the reply besides the model's end of text: a middle's."""
        return fim.ends(self._fim, request)

    def tokenize(self, text: str, *, special: bool) -> list[int]:
        return list(self._tokenizer.encode(text, add_special_tokens=special))

    def text(self, tokens: list[int]) -> str:
        """The text of ``tokens``, special tokens included."""
        return str(self._tokenizer.decode(tokens, skip_special_tokens=False))

    def _render(self, messages: list[Message], tools: list[Tool], think: Think) -> Prompt:
        conversation, mm_data = template_messages(messages), dict[str, Any]()
        if any(m.images for m in messages):
            if self._images is None:
                raise Unsupported(f'"{self._ref.name}" does not support images')
            conversation, mm_data = self._images.place(conversation, messages, self._template)
        text = self._tokenizer.apply_chat_template(
            conversation,
            tools=template_tools(tools),
            chat_template=self._template,
            add_generation_prompt=True,
            tokenize=False,
            **template_kwargs(think),
        )
        return Prompt(self.tokenize(text, special=False), mm_data)
