"""Prompts as token ids: the tokenizer's chat template (or the Modelfile's Jinja template)."""

from __future__ import annotations

from typing import Any

from vllama import fim
from vllama.chat_inputs import generate_messages, is_jinja, template_kwargs, template_messages, template_tools
from vllama.errors import BadRequest, Unsupported
from vllama.thinking import ThinkingFormat, thinking_format
from vllama.types import ChatRequest, GenerateRequest, Message, ModelRef, Think, Tool


class Prompts:
    """Turns requests into the token ids the model sees."""

    def __init__(self, tokenizer: Any, ref: ModelRef) -> None:
        self._tokenizer = tokenizer
        self._name = ref.name
        self._template = ref.template if is_jinja(ref.template) else None
        self.has_template = self._template is not None or bool(tokenizer.has_chat_template)
        self._fim = fim.find(tokenizer.get_vocab())
        self._bos = fim.hf_bos(tokenizer) if self._fim else []
        source = self._template or (getattr(tokenizer, "chat_template", None) if self.has_template else None)
        #: How the model marks its thinking, from the template in use.
        self.thinking_format: ThinkingFormat | None = thinking_format(source) if isinstance(source, str) else None

    def for_generate(self, request: GenerateRequest) -> list[int]:
        if fim.wanted(request):
            if self._fim is None:
                raise Unsupported(f'"{self._name}" does not support insert')
            return fim.prompt(self._fim, request, lambda text: list(self._tokenizer.encode(text, add_special_tokens=False)), bos=self._bos)
        context = list(request.context)
        if request.raw or not self.has_template:
            if not request.prompt:
                return context
            return context + list(self._tokenizer.encode(request.prompt, add_special_tokens=not context))
        return context + self._render(generate_messages(request), request.think, [])

    def end_tokens(self, request: GenerateRequest | ChatRequest) -> frozenset[int]:
        """Tokens that end the reply besides the model's end of text: a middle's."""
        return fim.ends(self._fim, request)

    def for_chat(self, request: ChatRequest) -> list[int]:
        if not self.has_template:
            raise Unsupported(f'"{self._name}" does not support chat')
        return self._render(request.messages, request.think, request.tools)

    def text(self, tokens: list[int]) -> str:
        """The text of ``tokens``, special tokens included."""
        return str(self._tokenizer.decode(tokens, skip_special_tokens=False))

    def _render(self, messages: list[Message], think: Think, tools: list[Tool]) -> list[int]:
        kwargs: dict[str, Any] = {"add_generation_prompt": True, "tools": template_tools(tools), **template_kwargs(think)}
        if self._template is not None:
            kwargs["chat_template"] = self._template
        try:
            text = self._tokenizer.apply_chat_template(template_messages(messages), tokenize=False, **kwargs)
        except Exception as e:  # jinja2 and transformers raise many kinds
            raise BadRequest(f"failed to render the chat template: {e}") from None
        return list(self._tokenizer.encode(text, add_special_tokens=False))
