"""Settings from the environment: VLLAMA_* over OLLAMA_*, host forms, integers, lists."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from vllama.config import DEFAULT_PORT, OLLAMA_ALIASES, Settings, env, parse_host


def test_defaults() -> None:
    s = Settings.from_env({})
    assert (s.host, s.port) == ("127.0.0.1", 11434)
    assert s.models_dir == Path.home() / ".vllama" / "models"
    assert s.keep_alive == 300.0
    assert s.num_parallel is None
    assert s.num_parallel_per_model == {}
    assert (s.max_loaded_models, s.max_queue, s.context_length) == (3, 512, None)
    assert s.origins == ()
    assert s.backend is None and s.plugins is None and s.plugin_modules == ()
    assert s.isolate_engines is True
    assert s.url == "http://127.0.0.1:11434"
    assert DEFAULT_PORT == 11434


def test_aliases_are_ollamas_settings() -> None:
    assert set(OLLAMA_ALIASES) == {
        "HOST",
        "MODELS",
        "KEEP_ALIVE",
        "NUM_PARALLEL",
        "MAX_LOADED_MODELS",
        "MAX_QUEUE",
        "ORIGINS",
        "CONTEXT_LENGTH",
        "DEBUG",
        "NOPRUNE",
    }


# Each aliased setting: a value for VLLAMA_*, another for OLLAMA_*, and what each gives.
CASES = {
    "HOST": (("0.0.0.0:1", ("0.0.0.0", 1)), ("10.0.0.2:2", ("10.0.0.2", 2)), lambda s: (s.host, s.port)),
    "MODELS": (("/v/models", Path("/v/models")), ("/o/models", Path("/o/models")), lambda s: s.models_dir),
    "KEEP_ALIVE": (("10m", 600.0), ("30", 30.0), lambda s: s.keep_alive),
    "NUM_PARALLEL": (("4", 4), ("2", 2), lambda s: s.num_parallel),
    "MAX_LOADED_MODELS": (("5", 5), ("6", 6), lambda s: s.max_loaded_models),
    "MAX_QUEUE": (("10", 10), ("20", 20), lambda s: s.max_queue),
    "ORIGINS": (("http://a", ("http://a",)), ("http://b,http://c", ("http://b", "http://c")), lambda s: s.origins),
    "CONTEXT_LENGTH": (("8192", 8192), ("2048", 2048), lambda s: s.context_length),
    "DEBUG": (("0", False), ("true", True), lambda s: s.debug),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_vllama_beats_ollama(name: str) -> None:
    (v_raw, v_val), (o_raw, _), get = CASES[name]
    assert get(Settings.from_env({f"VLLAMA_{name}": v_raw, f"OLLAMA_{name}": o_raw})) == v_val


@pytest.mark.parametrize("name", sorted(CASES))
def test_ollama_used_when_vllama_absent(name: str) -> None:
    _, (o_raw, o_val), get = CASES[name]
    assert get(Settings.from_env({f"OLLAMA_{name}": o_raw})) == o_val


@pytest.mark.parametrize("name", sorted(CASES))
def test_empty_values_mean_unset(name: str) -> None:
    assert Settings.from_env({f"VLLAMA_{name}": ""}) == Settings.from_env({})
    assert Settings.from_env({f"OLLAMA_{name}": ""}) == Settings.from_env({})


@pytest.mark.parametrize(
    "name", ["BACKEND", "PLUGINS", "PLUGIN_MODULES", "ISOLATE_ENGINES", "NUM_PARALLEL_MODELS", "LOG_FORMAT", "ACCESS_LOG"]
)
def test_vllama_only_settings_have_no_ollama_alias(name: str) -> None:
    assert env(name, {f"OLLAMA_{name}": "x"}) is None
    assert env(name, {f"VLLAMA_{name}": "x"}) == "x"


def test_env_reads_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VLLAMA_MAX_QUEUE", raising=False)
    monkeypatch.setenv("OLLAMA_MAX_QUEUE", "7")
    assert env("MAX_QUEUE") == "7"
    assert Settings.from_env().max_queue == 7


def test_keep_alive_forms() -> None:
    assert Settings.from_env({"OLLAMA_KEEP_ALIVE": "-1"}).keep_alive == math.inf
    assert Settings.from_env({"OLLAMA_KEEP_ALIVE": "0"}).keep_alive == 0.0
    assert Settings.from_env({"OLLAMA_KEEP_ALIVE": "1h"}).keep_alive == 3600.0
    with pytest.raises(ValueError):
        Settings.from_env({"OLLAMA_KEEP_ALIVE": "soon"})


def test_models_dir_expands_user() -> None:
    assert Settings.from_env({"OLLAMA_MODELS": "~/m"}).models_dir == Path.home() / "m"


@pytest.mark.parametrize("name", ["NUM_PARALLEL", "MAX_LOADED_MODELS", "MAX_QUEUE", "CONTEXT_LENGTH"])
def test_zero_or_negative_means_default(name: str) -> None:
    default = Settings.from_env({})
    for raw in ("0", "-3"):
        s = Settings.from_env({f"VLLAMA_{name}": raw})
        assert s == default


@pytest.mark.parametrize("name", ["NUM_PARALLEL", "MAX_LOADED_MODELS", "MAX_QUEUE", "CONTEXT_LENGTH"])
@pytest.mark.parametrize("prefix", ["VLLAMA_", "OLLAMA_"])
def test_bad_integer_names_the_variable(name: str, prefix: str) -> None:
    with pytest.raises(ValueError) as info:
        Settings.from_env({f"{prefix}{name}": "lots"})
    assert name in str(info.value)
    assert "'lots'" in str(info.value)
    assert "integer" in str(info.value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, ("127.0.0.1", 11434)),
        ("", ("127.0.0.1", 11434)),
        ("0.0.0.0", ("0.0.0.0", 11434)),
        ("0.0.0.0:8080", ("0.0.0.0", 8080)),
        (":8080", ("127.0.0.1", 8080)),
        ("localhost", ("localhost", 11434)),
        ("example:9000", ("example", 9000)),
        ("http://example:9000", ("example", 9000)),
        ("http://example", ("example", 80)),
        ("https://h", ("h", 443)),
        ("https://h:8443", ("h", 8443)),
        ("http://example:9000/path", ("example", 9000)),
        ("[::1]:1234", ("::1", 1234)),
        ("[::]", ("::", 11434)),
        ("http://[::1]", ("::1", 80)),
    ],
)
def test_parse_host(value: str | None, expected: tuple[str, int]) -> None:
    assert parse_host(value) == expected


def test_url_uses_loopback_for_unspecified_hosts() -> None:
    assert Settings.from_env({"OLLAMA_HOST": "0.0.0.0:9999"}).url == "http://127.0.0.1:9999"
    assert Settings.from_env({"OLLAMA_HOST": "[::]:9999"}).url == "http://127.0.0.1:9999"
    assert Settings.from_env({"OLLAMA_HOST": "example:1"}).url == "http://example:1"


def test_num_parallel_models() -> None:
    s = Settings.from_env({"VLLAMA_NUM_PARALLEL_MODELS": "llama3.2=4, Qwen3:8B=1 ,,hf.co/a/b:Q4=2"})
    assert s.num_parallel_per_model == {"llama3.2": 4, "qwen3:8b": 1, "hf.co/a/b:q4": 2}


def test_num_parallel_models_last_equals_sign_splits() -> None:
    assert Settings.from_env({"VLLAMA_NUM_PARALLEL_MODELS": "a=b=3"}).num_parallel_per_model == {"a=b": 3}


@pytest.mark.parametrize("raw", ["llama", "=4", "a=", "a=four", "a=1,b"])
def test_num_parallel_models_errors(raw: str) -> None:
    with pytest.raises(ValueError, match="VLLAMA_NUM_PARALLEL_MODELS"):
        Settings.from_env({"VLLAMA_NUM_PARALLEL_MODELS": raw})


def test_lists() -> None:
    s = Settings.from_env(
        {
            "OLLAMA_ORIGINS": " chrome-extension://* , http://x.test,, ",
            "VLLAMA_PLUGINS": "llamacpp, vllm",
            "VLLAMA_PLUGIN_MODULES": "vllama.testing.echo",
        }
    )
    assert s.origins == ("chrome-extension://*", "http://x.test")
    assert s.plugins == ("llamacpp", "vllm")
    assert s.plugin_modules == ("vllama.testing.echo",)


def test_plugins_none_is_an_empty_allowlist() -> None:
    assert Settings.from_env({"VLLAMA_PLUGINS": "none"}).plugins == ("none",)


def test_backend() -> None:
    assert Settings.from_env({"VLLAMA_BACKEND": "llamacpp"}).backend == "llamacpp"
    assert Settings.from_env({"OLLAMA_BACKEND": "llamacpp"}).backend is None


@pytest.mark.parametrize(
    ("raw", "expected"), [("0", False), ("false", False), ("No", False), ("OFF", False), ("1", True), ("true", True), ("yes", True)]
)
def test_isolate_engines(raw: str, expected: bool) -> None:
    assert Settings.from_env({"VLLAMA_ISOLATE_ENGINES": raw}).isolate_engines is expected


def test_overrides_win_and_none_overrides_are_ignored() -> None:
    s = Settings.from_env({"OLLAMA_HOST": "a:1", "OLLAMA_MAX_QUEUE": "5"}, port=2, max_queue=None, backend="echo")
    assert (s.host, s.port, s.max_queue, s.backend) == ("a", 2, 5, "echo")


def test_settings_are_frozen() -> None:
    s = Settings.from_env({})
    with pytest.raises(AttributeError):
        s.port = 1


def test_registry_and_short_name_settings() -> None:
    default = Settings.from_env({})
    assert default.registry == "https://registry.ollama.ai" and default.short_names == "auto"
    chosen = Settings.from_env({"VLLAMA_REGISTRY": "http://mirror.local:5000/", "VLLAMA_SHORT_NAMES": "Library"})
    assert chosen.registry == "http://mirror.local:5000" and chosen.short_names == "library"
    with pytest.raises(ValueError, match="VLLAMA_REGISTRY must be an http:// or https:// URL"):
        Settings.from_env({"VLLAMA_REGISTRY": "mirror.local"})
    with pytest.raises(ValueError, match="VLLAMA_SHORT_NAMES must be one of auto, registry, library"):
        Settings.from_env({"VLLAMA_SHORT_NAMES": "hub"})
