"""Ollama options: validation, Ollama's error messages, precedence and load settings."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vllama import options
from vllama.errors import BadRequest
from vllama.options import RANGES, REMOVED, check_for_model, is_option, merge, validate, value_type
from vllama.types import LoadSettings, SamplingOptions


def sampling(*layers: dict[str, Any]) -> SamplingOptions:
    """What sampling uses, from layers merged once."""
    return merge(*layers).sampling


def load_settings(*layers: dict[str, Any], num_ctx: int, parallel: int) -> LoadSettings:
    """What loading uses, from the same merge, with the scheduler's context default and parallelism."""
    return merge(*layers).load.settings(num_ctx=num_ctx, parallel=parallel)


INT_OPTIONS = ["num_keep", "seed", "top_k", "repeat_last_n", "num_gpu", "main_gpu", "num_thread"]
POSITIVE_INT_OPTIONS = ["num_ctx", "num_batch", "num_parallel"]
FLOAT_OPTIONS = ["top_p", "min_p", "typical_p", "temperature", "repeat_penalty", "presence_penalty", "frequency_penalty"]
TYPE_NAMES = {int: "integer", float: "float", bool: "boolean", list: "array"}

finite = st.floats(allow_nan=False, allow_infinity=False)


def in_range(key: str) -> st.SearchStrategy[Any]:
    """Values of ``key``'s type inside its range (ints too where floats are expected)."""
    r, kind = RANGES[key], value_type(key)
    low = None if r.low is None else int(r.low) + (1 if r.open_low and kind is int else 0)
    high = None if r.high is None else int(r.high)
    ints = st.integers(low if low is not None else -(2**70), high if high is not None else 2**70)
    if kind is int:
        return ints | st.sampled_from(r.also) if r.also else ints
    floats = st.floats(r.low, r.high, exclude_min=r.open_low, allow_nan=False, allow_infinity=False)
    return floats | ints.filter(lambda n: n in r)


def out_of_range(key: str) -> st.SearchStrategy[Any]:
    """Values of ``key``'s type outside its range."""
    r, kind = RANGES[key], value_type(key)
    sides = []
    if r.low is not None:
        below = st.integers(max_value=int(r.low) - (0 if r.open_low and kind is int else 1)).filter(lambda n: n not in r.also)
        sides.append(below if kind is int else below | st.floats(max_value=r.low, exclude_max=not r.open_low, allow_nan=False))
    if r.high is not None:
        above = st.integers(min_value=int(r.high) + 1)
        sides.append(above if kind is int else above | st.floats(min_value=r.high, exclude_min=True, allow_nan=False))
    if kind is float:
        sides.append(st.sampled_from([math.nan, math.inf, -math.inf]))
    return st.one_of(sides)


BOUNDED = [k for k, r in RANGES.items() if r.low is not None or r.high is not None]


@st.composite
def valid_options(draw: st.DrawFn) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in draw(st.lists(st.sampled_from(sorted(RANGES)), unique=True)):
        out[key] = draw(in_range(key))
    if draw(st.booleans()):
        out["use_mmap"] = draw(st.booleans())
    if draw(st.booleans()):
        out["stop"] = draw(st.one_of(st.text(), st.lists(st.text())))
    return out


@given(valid_options())
def test_valid_options_are_accepted_unchanged_with_ollama_types(opts: dict[str, Any]) -> None:
    out = validate(opts)
    assert set(out) == set(opts)
    for key, value in out.items():
        kind = value_type(key)
        assert kind is not None
        if kind is float:
            assert type(value) is float and value == float(opts[key])  # an int becomes the nearest float
        elif kind is int:
            assert type(value) is int and value == opts[key]
        elif kind is bool:
            assert value is opts[key]
        else:
            assert value == (opts[key] if isinstance(opts[key], list) else [opts[key]])


@given(st.data())
def test_out_of_range_is_a_400_naming_the_option_and_its_range(data: st.DataObject) -> None:
    key = data.draw(st.sampled_from(BOUNDED))
    value = data.draw(out_of_range(key))
    with pytest.raises(BadRequest) as info:
        validate({"temperature": 0.5, key: value})
    assert info.value.status == 400
    assert info.value.message.startswith(f'option "{key}" must be {RANGES[key]}, got ')


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"top_p": 7}, 'option "top_p" must be between 0 and 1, got 7.0'),
        ({"temperature": -5}, 'option "temperature" must be >= 0, got -5.0'),
        ({"top_k": -1}, 'option "top_k" must be between 0 and 2147483647, got -1'),
        ({"num_batch": 10**9}, 'option "num_batch" must be between 1 and 16384, got 1000000000'),
        ({"num_thread": 1000}, f'option "num_thread" must be between 0 and {options.CPUS}, got 1000'),
        ({"num_ctx": 10**9}, 'option "num_ctx" must be between 1 and 16777216, got 1000000000'),
        ({"num_gpu": 10**9}, 'option "num_gpu" must be -1 or between 0 and 999, got 1000000000'),
        ({"num_predict": -3}, 'option "num_predict" must be -1, -2 or between 0 and 2147483647, got -3'),
        ({"repeat_penalty": 0}, 'option "repeat_penalty" must be > 0, got 0.0'),
        ({"min_p": 1.5}, 'option "min_p" must be between 0 and 1, got 1.5'),
        ({"repeat_last_n": -2}, 'option "repeat_last_n" must be between -1 and 2147483647, got -2'),
    ],
)
def test_the_reported_values_are_refused_with_their_range(options: dict[str, Any], message: str) -> None:
    with pytest.raises(BadRequest) as info:
        validate(options)
    assert info.value.message == message


def test_an_integer_past_any_float_is_out_of_range() -> None:
    with pytest.raises(BadRequest, match=r'^option "temperature" must be >= 0, got 1000'):
        validate({"temperature": 10**400})


def test_every_typed_number_has_a_range() -> None:
    assert set(RANGES) == {k for k in list(options._SAMPLING) + list(options._LOAD) if value_type(k) in (int, float)}


@pytest.mark.parametrize(("gpu", "ok"), [(-1, True), (999, True), (0, True), (31, True), (32, False), (500, False)])
def test_num_gpu_is_bounded_by_the_models_layers(gpu: int, ok: bool) -> None:
    info = {"general.architecture": "llama", "llama.block_count": 30}
    if ok:
        check_for_model({"num_gpu": gpu}, info)
    else:
        with pytest.raises(BadRequest, match=r'option "num_gpu" must be -1, 999 \(all layers\) or between 0 and 31'):
            check_for_model({"num_gpu": gpu}, info)
    check_for_model({"num_gpu": gpu}, {})  # no layer count known: the table's range only


def test_int_becomes_float_where_float_expected() -> None:
    out = validate({"temperature": 1, "top_p": 0, "repeat_penalty": 2})
    assert out == {"temperature": 1.0, "top_p": 0.0, "repeat_penalty": 2.0}
    assert all(type(v) is float for v in out.values())


def test_integral_float_becomes_int() -> None:
    out = validate({"top_k": 40.0, "num_ctx": 8192.0})
    assert out == {"top_k": 40, "num_ctx": 8192}
    assert all(type(v) is int for v in out.values())


def test_stop_string_becomes_list() -> None:
    assert validate({"stop": "\n"}) == {"stop": ["\n"]}
    assert validate({"stop": ["a", "b"]}) == {"stop": ["a", "b"]}
    assert validate({"stop": []}) == {"stop": []}


_WRONG = {
    int: ["5", 1.5, True, None and 0, [1], {"a": 1}],
    float: ["0.5", True, False, [0.5], {}],
    bool: [1, 0, "true", 1.0],
    list: [1, ["a", 1], [None], {"a": "b"}, True],
}


@pytest.mark.parametrize(
    ("key", "value"),
    [(k, v) for k in INT_OPTIONS + POSITIVE_INT_OPTIONS + ["num_predict"] for v in _WRONG[int] if v is not None and v != 0]
    + [(k, v) for k in FLOAT_OPTIONS for v in _WRONG[float]]
    + [("use_mmap", v) for v in _WRONG[bool]]
    + [("stop", v) for v in _WRONG[list]],
)
def test_wrong_types_give_ollamas_message(key: str, value: Any) -> None:
    kind = value_type(key)
    with pytest.raises(BadRequest) as info:
        validate({key: value})
    assert info.value.message == f'option "{key}" must be of type {TYPE_NAMES[kind]}'
    assert info.value.status == 400


def test_top_k_message_exactly() -> None:
    with pytest.raises(BadRequest, match='^option "top_k" must be of type integer$'):
        validate({"top_k": "forty"})


@pytest.mark.parametrize("key", ["foo", "Temperature", "max_tokens", "top_logprobs", ""])
def test_unknown_options_are_ignored_with_a_warning(key: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="vllama.options"):
        assert validate({key: 1, "temperature": 0.5}) == {"temperature": 0.5}
    assert [r.getMessage() for r in caplog.records] == [f'ignoring unknown option "{key}"']


def test_unknown_options_make_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="vllama.options"):
        assert validate({"foo": 1, "bar": "x", "top_k": 3}) == {"top_k": 3}
    assert [r.getMessage() for r in caplog.records] == ['ignoring unknown options "foo", "bar"']


@given(st.dictionaries(st.text().filter(lambda k: not is_option(k)), st.none() | st.integers() | st.text() | finite))
def test_unknown_options_never_raise(extra: dict[str, Any]) -> None:
    assert validate({**extra, "temperature": 0.5}) == {"temperature": 0.5}


@pytest.mark.parametrize("key", sorted(REMOVED))
def test_removed_options_are_ignored(key: str) -> None:
    assert validate({key: 1, "temperature": 0.5}) == {"temperature": 0.5}
    # Whatever the type, they are dropped before any check.
    assert validate({key: "anything"}) == {}
    assert is_option(key)


def test_removed_list_matches_ollamas() -> None:
    for key in (
        "mirostat",
        "mirostat_tau",
        "mirostat_eta",
        "tfs_z",
        "penalize_newline",
        "numa",
        "low_vram",
        "f16_kv",
        "logits_all",
        "vocab_only",
        "use_mlock",
        "num_gqa",
        "rope_frequency_base",
    ):
        assert key in REMOVED


def test_none_values_are_dropped() -> None:
    assert validate({"temperature": None, "top_k": None, "foo": None}) == {}


@pytest.mark.parametrize("n", [-1, -2, 0, 1, 128])
def test_num_predict_accepts_minus_one_and_minus_two(n: int) -> None:
    assert validate({"num_predict": n}) == {"num_predict": n}


@given(st.integers(max_value=-3))
def test_num_predict_below_minus_two_is_rejected(n: int) -> None:
    with pytest.raises(BadRequest, match="num_predict"):
        validate({"num_predict": n})


@pytest.mark.parametrize("key", POSITIVE_INT_OPTIONS)
@pytest.mark.parametrize("n", [0, -1])
def test_sizes_must_be_positive(key: str, n: int) -> None:
    with pytest.raises(BadRequest, match=f'option "{key}" must be between 1 and '):
        validate({key: n})


def test_model_settings_and_engine_settings_pass_through() -> None:
    assert validate({"backend": "llamacpp"}) == {"backend": "llamacpp"}
    assert validate({"gpu_memory_utilization": 0.9}) == {}
    engine = frozenset({"gpu_memory_utilization", "quantization"})
    assert validate({"gpu_memory_utilization": 0.9, "quantization": "fp8"}, engine_settings=engine) == {
        "gpu_memory_utilization": 0.9,
        "quantization": "fp8",
    }


def test_is_option_and_value_type() -> None:
    assert is_option("temperature") and is_option("num_ctx") and is_option("backend") and is_option("tfs_z")
    assert not is_option("foo")
    assert value_type("temperature") is float
    assert value_type("top_k") is int
    assert value_type("use_mmap") is bool
    assert value_type("stop") is list
    assert value_type("backend") is None
    assert value_type("mirostat") is None


# -- sampling precedence -----------------------------------------------------------------------


def test_sampling_defaults_are_ollamas() -> None:
    s = sampling()
    assert s == SamplingOptions()
    assert (s.temperature, s.top_k, s.top_p, s.min_p, s.num_predict, s.seed) == (0.8, 40, 0.9, 0.0, -1, None)
    assert (s.repeat_penalty, s.repeat_last_n, s.num_keep, s.stop) == (1.0, 64, 4, [])


def test_sampling_precedence_request_wins() -> None:
    defaults = {"temperature": 0.1, "top_k": 10, "top_p": 0.5}
    model = {"temperature": 0.2, "top_k": 20, "stop": ["<|im_end|>"]}
    request = {"temperature": 0.3}
    s = sampling(defaults, model, request)
    assert s.temperature == 0.3
    assert s.top_k == 20
    assert s.top_p == 0.5
    assert s.stop == ["<|im_end|>"]
    assert sampling(defaults, model, {"stop": ["x"]}).stop == ["x"]  # lists are replaced, not merged


@given(st.lists(st.dictionaries(st.sampled_from(["temperature", "top_p", "min_p"]), finite), max_size=4))
def test_sampling_last_layer_wins(layers: list[dict[str, float]]) -> None:
    s = sampling(*layers)
    for key in ("temperature", "top_p", "min_p"):
        expected = next((layer[key] for layer in reversed(layers) if key in layer), getattr(SamplingOptions(), key))
        assert getattr(s, key) == expected


def test_sampling_ignores_load_settings_and_model_settings() -> None:
    s = sampling({"num_ctx": 8192, "backend": "x", "temperature": 0.4})
    assert s.temperature == 0.4


@pytest.mark.parametrize(("seed", "expected"), [(-1, None), (-100, None), (0, 0), (42, 42)])
def test_seed(seed: int, expected: int | None) -> None:
    assert sampling({"seed": seed}).seed == expected


def test_request_seed_minus_one_overrides_model_seed() -> None:
    assert sampling({"seed": 7}, {"seed": -1}).seed is None
    assert sampling({"seed": -1}, {"seed": 7}).seed == 7


def test_validate_then_sampling_end_to_end() -> None:
    model = validate({"temperature": 1, "stop": "END"})
    request = validate({"top_k": 5.0, "mirostat": 2})
    s = sampling(model, request)
    assert (s.temperature, s.top_k, s.stop) == (1.0, 5, ["END"])


# -- load settings -----------------------------------------------------------------------------


def test_load_settings_defaults() -> None:
    ls = load_settings(num_ctx=4096, parallel=2)
    assert ls == LoadSettings(num_ctx=4096, parallel=2, num_batch=512, num_thread=0, num_gpu=-1, engine={})


def test_load_settings_layers_and_engine() -> None:
    ls = load_settings(
        {"num_ctx": 2048, "gpu_memory_utilization": 0.5, "backend": "vllm", "temperature": 0.1, "stop": ["x"]},
        {
            "num_ctx": 8192,
            "num_parallel": 3,
            "num_batch": 64,
            "num_thread": 8,
            "num_gpu": 0,
            "gpu_memory_utilization": 0.9,
            "tensor_parallel_size": 2,
        },
        num_ctx=4096,
        parallel=1,
    )
    # parallel is the scheduler's decision (the argument), not an option layer's num_parallel.
    assert (ls.num_ctx, ls.parallel, ls.num_batch, ls.num_thread, ls.num_gpu) == (8192, 1, 64, 8, 0)
    # Only non-Ollama keys go to the engine: no sampling options, no load options, no backend.
    assert ls.engine == {"gpu_memory_utilization": 0.9, "tensor_parallel_size": 2}


def test_load_settings_fall_back_to_server_values() -> None:
    ls = load_settings({"temperature": 0.5}, num_ctx=1234, parallel=7)
    assert (ls.num_ctx, ls.parallel) == (1234, 7)
    assert ls.engine == {}


def test_module_constants_are_consistent() -> None:
    # Every typed option is an option; removed ones have no type; nothing is both.
    for key in list(options._SAMPLING) + list(options._LOAD):
        assert is_option(key) and key not in REMOVED
    assert not set(options._SAMPLING) & set(options._LOAD)
    # SamplingOptions has a field for every sampling option, LoadSettings uses the load ones.
    assert set(options._SAMPLING) <= set(SamplingOptions.__struct_fields__)
