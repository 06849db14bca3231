"""The values OpenAI's API refuses on /v1, refused the same way: a 400 whose error names the
field (``param``) and says what it expected, in OpenAI's words."""

from __future__ import annotations

from typing import Any

from vllama.errors import BadRequest
from vllama.options import INT32_MAX


class InvalidParameter(BadRequest):
    """A 400 about one request field; /v1 answers it with ``param`` and ``code`` set."""

    def __init__(self, message: str, *, param: str, code: str | None = None) -> None:
        super().__init__(message)
        self.param = param
        self.code = code


#: field -> (minimum, maximum), as OpenAI's API checks them (token counts stop where an
#: engine's C int does).
LIMITS: dict[str, tuple[float | None, float | None]] = {
    "max_tokens": (1, INT32_MAX),
    "max_completion_tokens": (1, INT32_MAX),
    "max_output_tokens": (1, INT32_MAX),  # /v1/responses
    "temperature": (0, 2),
    "top_p": (0, 1),
    "n": (1, 128),
    "presence_penalty": (-2, 2),
    "frequency_penalty": (-2, 2),
    "top_logprobs": (0, 20),
    "logprobs": (0, 5),  # /v1/completions: an integer
}
LOGIT_BIAS = (-100, 100)


def _check(param: str, value: Any, low: float | None, high: float | None) -> None:
    kind = "integer" if isinstance(value, int) else "decimal"
    if low is not None and value < low:
        raise InvalidParameter(
            f"Invalid '{param}': {kind} below minimum value. Expected a value >= {low}, but got {value} instead.",
            param=param,
            code=f"{kind}_below_min_value",
        )
    if high is not None and value > high:
        raise InvalidParameter(
            f"Invalid '{param}': {kind} above maximum value. Expected a value <= {high}, but got {value} instead.",
            param=param,
            code=f"{kind}_above_max_value",
        )


def check(body: Any) -> None:
    """Raise :class:`InvalidParameter` for the first field of ``body`` outside OpenAI's range;
    and for ``n`` > 1, as one choice is all vllama generates."""
    for param, (low, high) in LIMITS.items():
        value = getattr(body, param, None)
        if value is not None and not isinstance(value, bool):
            _check(param, value, low, high)
    if (n := getattr(body, "n", None)) is not None and n > 1:
        raise InvalidParameter(
            f"Invalid 'n': vllama generates one choice per request; n must be 1, but got {n} instead.", param="n", code="unsupported_value"
        )
    for token, bias in (getattr(body, "logit_bias", None) or {}).items():
        _check(f"logit_bias.{token}", bias, *LOGIT_BIAS)
