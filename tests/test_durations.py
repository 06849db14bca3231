"""keep_alive durations: numbers are seconds, Go duration strings, negatives mean forever."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vllama.durations import FOREVER, env_keep_alive, keep_alive_seconds, parse_go_duration


def test_forever_is_infinite() -> None:
    assert math.inf == FOREVER


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, 0.0),
        (0.0, 0.0),
        (300, 300.0),
        (1.5, 1.5),
        (-1, FOREVER),
        (-0.5, FOREVER),
        (-1e9, FOREVER),
        ("0", 0.0),
        ("-0", 0.0),
        ("0s", 0.0),
        ("5m", 300.0),
        ("1h30m", 5400.0),
        ("1h", 3600.0),
        ("90s", 90.0),
        ("1.5h", 5400.0),
        (".5s", 0.5),
        ("2m30s", 150.0),
        ("500ms", 0.5),
        ("1h1m1s", 3661.0),
        ("+5m", 300.0),
        (" 5m ", 300.0),
        ("-1m", FOREVER),
        ("-1s", FOREVER),
        ("-1h30m", FOREVER),
    ],
)
def test_keep_alive_seconds(value: float | int | str, expected: float) -> None:
    result = keep_alive_seconds(value)
    assert result == expected
    assert isinstance(result, float)


def test_numbers_are_seconds_and_durations_match() -> None:
    assert keep_alive_seconds(300) == keep_alive_seconds("5m") == keep_alive_seconds("300s")


@pytest.mark.parametrize("value", ["300", "5", "1.5", "", "   ", "m", "5x", "five minutes", "1h 30m", "5m3", "1d", "h1"])
def test_invalid_strings_raise_value_error(value: str) -> None:
    with pytest.raises(ValueError):
        keep_alive_seconds(value)


def test_missing_unit_message() -> None:
    with pytest.raises(ValueError, match='missing unit in duration "300"'):
        keep_alive_seconds("300")
    with pytest.raises(ValueError, match='invalid duration "5x"'):
        keep_alive_seconds("5x")


@pytest.mark.parametrize("value", [True, False])
def test_booleans_are_not_durations(value: bool) -> None:
    with pytest.raises(ValueError):
        keep_alive_seconds(value)


@given(st.integers(0, 10**6), st.integers(0, 10**6), st.integers(0, 10**6))
def test_hms_strings(h: int, m: int, s: int) -> None:
    assert keep_alive_seconds(f"{h}h{m}m{s}s") == h * 3600 + m * 60 + s
    assert parse_go_duration(f"{h}h{m}m{s}s") == h * 3600 + m * 60 + s


@given(st.integers(0, 10**6), st.integers(0, 10**6), st.integers(0, 10**6))
def test_negative_hms_is_forever_unless_zero(h: int, m: int, s: int) -> None:
    expected = FOREVER if h or m or s else 0.0
    assert keep_alive_seconds(f"-{h}h{m}m{s}s") == expected
    assert parse_go_duration(f"-{h}h{m}m{s}s") == -(h * 3600 + m * 60 + s)


@given(st.one_of(st.integers(), st.floats(allow_nan=False)))
def test_numbers(value: float) -> None:
    result = keep_alive_seconds(value)
    assert result == (FOREVER if value < 0 else float(value))


@given(st.integers(0, 10**9), st.sampled_from(["ns", "us", "µs", "ms", "s", "m", "h"]))
def test_single_units(n: int, unit: str) -> None:
    scale = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}[unit]
    assert keep_alive_seconds(f"{n}{unit}") == pytest.approx(n * scale)


@given(st.text(max_size=12))
def test_any_string_is_a_number_or_a_value_error(text: str) -> None:
    try:
        result = keep_alive_seconds(text)
    except ValueError:
        return
    assert result >= 0


@pytest.mark.parametrize(
    ("text", "expected"),
    [("300", 300.0), ("0", 0.0), ("-1", FOREVER), ("-5", FOREVER), ("5m", 300.0), ("1h30m", 5400.0), ("-1m", FOREVER), ("24h", 86400.0)],
)
def test_env_keep_alive(text: str, expected: float) -> None:
    assert env_keep_alive(text) == expected


@given(st.integers(-(10**9), 10**9))
def test_env_keep_alive_bare_integers(n: int) -> None:
    assert env_keep_alive(str(n)) == (FOREVER if n < 0 else float(n))


@pytest.mark.parametrize("text", ["", "abc", "1.5", "5 m"])
def test_env_keep_alive_invalid(text: str) -> None:
    with pytest.raises(ValueError):
        env_keep_alive(text)


@pytest.mark.parametrize("value", ["--5m", "+-5m", "-+5m", "++5m", "-", "+", "- 5m"])
def test_more_than_one_sign_is_invalid(value: str) -> None:
    # Go's time.ParseDuration takes at most one sign (this used to be lstrip('+-')).
    with pytest.raises(ValueError):
        parse_go_duration(value)
