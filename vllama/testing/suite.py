"""The conformance suite set up from class attributes, for a backend's test module.

::

    class TestMyBackend(Conformance):
        backend_class = MyBackend
        model_fixture = "my_model"      # the fixture that gives the ModelRef ("smollm2" by default)
"""

from __future__ import annotations

from typing import ClassVar

import pytest

from vllama.engine import Backend
from vllama.testing.conformance import BackendConformance
from vllama.types import LoadSettings, ModelRef


class Conformance(BackendConformance):
    """:class:`BackendConformance` whose fixtures come from ``backend_class``, ``model_fixture``
    (the name of the fixture that gives the model) and ``load_settings``."""

    backend_class: ClassVar[type[Backend]]
    model_fixture: ClassVar[str] = "smollm2"
    load_settings: ClassVar[LoadSettings] = LoadSettings(num_ctx=512, parallel=4, num_thread=1)

    @pytest.fixture(scope="class")
    @classmethod
    def backend(cls) -> type[Backend]:
        return cls.backend_class

    @pytest.fixture(scope="class")
    @classmethod
    def model(cls, request: pytest.FixtureRequest) -> ModelRef:
        ref = request.getfixturevalue(cls.model_fixture)
        assert isinstance(ref, ModelRef), f"the {cls.model_fixture!r} fixture must give a ModelRef"
        return ref

    @pytest.fixture(scope="class")
    @classmethod
    def settings(cls) -> LoadSettings:
        return cls.load_settings
