"""One request inside the batch loop: the toolkit's sequence, with mlx-lm's sampler, logits
processors (its ``format`` mask among them) and streaming detokenizer."""

from __future__ import annotations

from typing import Any

from vllama import batching
from vllama_mlx.output_format import FormatMask
from vllama_mlx.sampling import LogitsProcessor


class Sequence(batching.Sequence):
    """A generation in progress; ``sampler`` is its mlx-lm sampler, ``id`` its uid in the
    BatchGenerator."""

    def __init__(
        self,
        prompt: list[int],
        *,
        processors: list[LogitsProcessor],
        detokenizer: Any,
        end_tokens: frozenset[int] = frozenset(),
        format_mask: FormatMask | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(prompt, **kwargs)
        #: The sampling processors, then the format mask (last: it sees the penalized logits).
        self.processors = processors if format_mask is None else [*processors, format_mask]
        #: Tokens that end this reply besides the model's end-of-text ones (a middle's).
        self.end_tokens = end_tokens
        self._detokenizer = detokenizer
        self.format_mask = format_mask

    def detokenize(self, token: int) -> str:
        self._detokenizer.add_token(token)
        return str(self._detokenizer.last_segment)

    def detokenize_rest(self) -> str:
        self._detokenizer.finalize()
        return str(self._detokenizer.last_segment)

    def free(self) -> None:
        if self.format_mask is not None:
            self.format_mask.free()
