"""/v1 refuses the values OpenAI's API refuses, in OpenAI's error shape, before any load."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vllama.server.openai_limits import LIMITS
from vllama.testing.server import ServerProcess

CHAT = {"model": "echo", "messages": [{"role": "user", "content": "hi"}]}
COMPLETION = {"model": "echo", "prompt": "hi"}
RESPONSE = {"model": "echo", "input": "hi"}
CHAT_FIELDS = [k for k in LIMITS if k not in ("logprobs", "max_output_tokens")]
COMPLETION_FIELDS = ["max_tokens", "temperature", "top_p", "n", "presence_penalty", "frequency_penalty", "logprobs"]
RESPONSE_FIELDS = ["max_output_tokens", "temperature", "top_p"]
INTEGERS = {"max_tokens", "max_completion_tokens", "max_output_tokens", "n", "top_logprobs", "logprobs"}


def _outside(field: str) -> st.SearchStrategy[Any]:
    low, high = LIMITS[field]
    whole = field in INTEGERS
    sides = []
    if low is not None:
        sides.append(
            st.integers(max_value=int(low) - 1)
            if whole
            else st.floats(max_value=low, exclude_max=True, allow_nan=False, allow_infinity=False)
        )
    if high is not None:
        sides.append(
            st.integers(min_value=int(high) + 1)
            if whole
            else st.floats(min_value=high, exclude_min=True, allow_nan=False, allow_infinity=False)
        )
    return st.one_of(sides)


def _inside(field: str) -> st.SearchStrategy[Any]:
    low, high = LIMITS[field]
    if field == "n":
        return st.just(1)
    if field in INTEGERS:
        return st.integers(int(low) if low is not None else None, int(high) if high is not None else 10_000)
    return st.floats(low, high, allow_nan=False)


def _post(server: ServerProcess, path: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(server.url + path, json=body, timeout=30)


def _assert_refused(r: httpx.Response, param: str) -> None:
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param
    assert f"'{param}'" in error["message"]


SLOW = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@SLOW
@given(data=st.data())
def test_chat_values_outside_openais_ranges_are_refused(echo_server: ServerProcess, data: st.DataObject) -> None:
    field = data.draw(st.sampled_from(CHAT_FIELDS))
    _assert_refused(_post(echo_server, "/v1/chat/completions", {**CHAT, field: data.draw(_outside(field))}), field)


@SLOW
@given(data=st.data())
def test_completion_values_outside_openais_ranges_are_refused(echo_server: ServerProcess, data: st.DataObject) -> None:
    field = data.draw(st.sampled_from(COMPLETION_FIELDS))
    _assert_refused(_post(echo_server, "/v1/completions", {**COMPLETION, field: data.draw(_outside(field))}), field)


@SLOW
@given(data=st.data())
def test_response_values_outside_openais_ranges_are_refused(echo_server: ServerProcess, data: st.DataObject) -> None:
    field = data.draw(st.sampled_from(RESPONSE_FIELDS))
    _assert_refused(_post(echo_server, "/v1/responses", {**RESPONSE, field: data.draw(_outside(field))}), field)


@SLOW
@given(data=st.data())
def test_chat_values_inside_openais_ranges_are_served(echo_server: ServerProcess, data: st.DataObject) -> None:
    field = data.draw(st.sampled_from([f for f in CHAT_FIELDS if f != "top_logprobs"]))
    r = _post(echo_server, "/v1/chat/completions", {**CHAT, field: data.draw(_inside(field))})
    assert r.status_code == 200, r.text
    assert len(r.json()["choices"]) == 1


@pytest.mark.parametrize(
    ("body", "param", "message"),
    [
        ({"max_tokens": -1}, "max_tokens", "Invalid 'max_tokens': integer below minimum value. Expected a value >= 1, but got -1 instead."),
        (
            {"max_completion_tokens": 0},
            "max_completion_tokens",
            "Invalid 'max_completion_tokens': integer below minimum value. Expected a value >= 1, but got 0 instead.",
        ),
        ({"top_p": -1}, "top_p", "Invalid 'top_p': decimal below minimum value. Expected a value >= 0, but got -1.0 instead."),
        (
            {"temperature": 2.5},
            "temperature",
            "Invalid 'temperature': decimal above maximum value. Expected a value <= 2, but got 2.5 instead.",
        ),
        ({"n": 100}, "n", "Invalid 'n': vllama generates one choice per request; n must be 1, but got 100 instead."),
        (
            {"top_logprobs": 21, "logprobs": True},
            "top_logprobs",
            "Invalid 'top_logprobs': integer above maximum value. Expected a value <= 20, but got 21 instead.",
        ),
        (
            {"logit_bias": {"50256": -101}},
            "logit_bias.50256",
            "Invalid 'logit_bias.50256': decimal below minimum value. Expected a value >= -100, but got -101.0 instead.",
        ),
    ],
)
def test_the_reported_values_are_refused_as_openai_does(echo_server: ServerProcess, body: dict[str, Any], param: str, message: str) -> None:
    r = _post(echo_server, "/v1/chat/completions", {**CHAT, **body})
    assert r.status_code == 400
    assert r.json()["error"]["message"] == message and r.json()["error"]["param"] == param


def test_logit_bias_in_range_and_n_1_are_served(echo_server: ServerProcess) -> None:
    r = _post(echo_server, "/v1/chat/completions", {**CHAT, "n": 1, "logit_bias": {"1": 100, "2": -100}})
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "hi"


def test_the_openai_client_sees_a_bad_request_naming_the_field(echo_server: ServerProcess) -> None:
    client = openai.OpenAI(base_url=echo_server.url + "/v1", api_key="unused")
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="echo", messages=[{"role": "user", "content": "hi"}], n=3)
    assert info.value.param == "n" and info.value.code == "unsupported_value"


def test_refusals_cost_no_load(echo_server: ServerProcess) -> None:
    httpx.post(echo_server.url + "/api/generate", json={"model": "echo", "keep_alive": 0}, timeout=30)
    assert _post(echo_server, "/v1/chat/completions", {**CHAT, "top_p": 7}).status_code == 400
    assert httpx.get(echo_server.url + "/api/ps").json()["models"] == []
