"""What mlx-lm would misread in config.json (pure logic; the real model is in test_mlx_reference)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vllama.errors import EngineError
from vllama_mlx.config_check import overrides, read_config

LLAMA_FIELDS = {"model_type", "hidden_size", "rope_theta", "rope_scaling", "max_position_embeddings"}


def test_rope_theta_only_in_rope_parameters_is_passed_on() -> None:
    config = {"model_type": "llama", "rope_parameters": {"rope_theta": 100000.0, "rope_type": "default"}}
    assert overrides(config, LLAMA_FIELDS) == {"rope_theta": 100000.0}


def test_rope_scaling_comes_along_when_not_default() -> None:
    params = {
        "rope_theta": 500000.0,
        "rope_type": "llama3",
        "factor": 32.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 8192,
    }
    fixed = overrides({"model_type": "llama", "rope_parameters": params}, LLAMA_FIELDS)
    assert fixed["rope_theta"] == 500000.0
    assert fixed["rope_scaling"] == {k: v for k, v in params.items() if k != "rope_theta"}


@pytest.mark.parametrize(
    "config, fields",
    [
        ({"model_type": "llama", "rope_theta": 10000.0, "rope_parameters": {"rope_theta": 100000.0}}, LLAMA_FIELDS),
        ({"model_type": "llama"}, LLAMA_FIELDS),
        ({"model_type": "qwen3_5", "rope_parameters": {"rope_theta": 1e6}}, {"rope_parameters", "rope_theta"}),
        ({"model_type": "x", "rope_parameters": {"rope_theta": 1e6}}, {"hidden_size"}),
    ],
    ids=["top-level-wins", "no-rope-parameters", "model-reads-rope-parameters", "model-has-no-rope"],
)
def test_nothing_to_fix(config: dict, fields: set) -> None:
    assert overrides(config, fields) == {}


def test_a_form_it_cannot_read_is_a_clear_error() -> None:
    per_layer = {"full_attention": {"rope_theta": 1e6}, "sliding_attention": {"rope_theta": 1e4}}
    with pytest.raises(EngineError, match='add a top-level "rope_theta"'):
        overrides({"model_type": "llama", "rope_parameters": per_layer}, LLAMA_FIELDS)


@given(st.floats(min_value=1.0, max_value=1e9, allow_nan=False), st.sampled_from(["default", None]))
def test_any_rope_base_reaches_the_model(theta: float, rope_type: str | None) -> None:
    params: dict = {"rope_theta": theta}
    if rope_type:
        params["rope_type"] = rope_type
    assert overrides({"model_type": "llama", "rope_parameters": params}, LLAMA_FIELDS) == {"rope_theta": theta}


def test_unreadable_configs(tmp_path: Path) -> None:
    with pytest.raises(EngineError, match="no config.json"):
        read_config(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(EngineError, match="unreadable config.json"):
        read_config(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"hidden_size": 1}))
    with pytest.raises(EngineError, match="no model_type"):
        read_config(tmp_path)
