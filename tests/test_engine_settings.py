"""Typed engine settings: a backend names a struct, and the core derives the setting names and
checks every value against it before any load."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

import msgspec
import pytest

from vllama.engine import Backend, EngineSettings, Support
from vllama.errors import BadRequest
from vllama.types import Hardware, LoadSettings, ModelRef


class ToySettings(EngineSettings):
    workers: Annotated[int, msgspec.Meta(ge=1, le=8)] = 1
    precision: Literal["fast", "exact"] = "exact"


class Toy(Backend):
    name: ClassVar[str] = "toy"
    formats: ClassVar[frozenset[str]] = frozenset({"gguf"})
    settings_type: ClassVar[type[EngineSettings]] = ToySettings

    @classmethod
    def supports(cls, model: ModelRef, hardware: Hardware) -> Support | None:
        return Support(score=1)

    @classmethod
    async def load(cls, model: ModelRef, hardware: Hardware, settings: LoadSettings) -> Any:
        raise NotImplementedError


def test_the_names_come_from_the_struct() -> None:
    assert Toy.engine_settings == {"workers", "precision"}
    assert Backend.engine_settings == frozenset()


@pytest.mark.parametrize("good", [{"workers": 8}, {"precision": "fast"}, {"workers": 1, "precision": "exact"}])
def test_values_in_range_pass(good: dict[str, Any]) -> None:
    Toy.check_engine_settings(good)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"workers": 9}, 'engine setting "workers": Expected `int` <= 8, got 9'),
        ({"workers": 0}, 'engine setting "workers": Expected `int` >= 1, got 0'),
        ({"workers": "many"}, 'engine setting "workers": Expected `int`, got `str`'),
        ({"precision": "sloppy"}, "engine setting \"precision\": Invalid enum value 'sloppy'"),
    ],
)
def test_a_bad_value_is_a_400_naming_the_setting(bad: dict[str, Any], message: str) -> None:
    with pytest.raises(BadRequest) as e:
        Toy.check_engine_settings(bad)
    assert e.value.message == message
