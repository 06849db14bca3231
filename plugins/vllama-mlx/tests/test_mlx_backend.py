"""Selection and registration: cheap, no MLX import until a model loads."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from vllama.errors import BadRequest, EngineError
from vllama.types import Device, Hardware, LoadSettings, ModelRef
from vllama_mlx import backend as backend_module
from vllama_mlx.backend import FALLBACK_SCORE, METAL_SCORE, MlxBackend

CPU = Device(kind="cpu", name="cpu", cores=2)
MAC = Hardware(devices=(CPU, Device(kind="metal", name="Apple M3")))
LINUX = Hardware(devices=(CPU,))


def ref(fmt: str) -> ModelRef:
    return ModelRef(name="m", format=fmt, path="/nowhere")


@pytest.mark.parametrize("fmt", ["safetensors", "mlx"])
def test_first_choice_on_apple_silicon_and_a_fallback_elsewhere(fmt: str) -> None:
    mac, linux = MlxBackend.supports(ref(fmt), MAC), MlxBackend.supports(ref(fmt), LINUX)
    assert mac is not None and mac.score == METAL_SCORE and mac.parallel >= 1
    assert linux is not None and linux.score == FALLBACK_SCORE < 10, "any other engine beats MLX on a CPU"


def test_gguf_is_left_to_llama_cpp() -> None:
    assert MlxBackend.supports(ref("gguf"), MAC) is None


def test_not_offered_without_mlx(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backend_module.importlib.util, "find_spec", lambda name: None)
    assert MlxBackend.supports(ref("safetensors"), MAC) is None


def test_entry_point_and_import_cost_nothing() -> None:
    (ep,) = [e for e in entry_points(group="vllama") if e.name == "mlx"]
    assert ep.value == "vllama_mlx"
    code = (
        "import sys, vllama_mlx\n"
        "from vllama_mlx.backend import MlxBackend\n"
        "from vllama.types import Hardware, ModelRef\n"
        "MlxBackend.supports(ModelRef(name='m', format='safetensors', path='/x'), Hardware())\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('mlx', 'mlx_lm', 'torch', 'transformers')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize(
    "config, settings, error, message",
    [
        ({"model_type": "no-such-architecture"}, LoadSettings(), EngineError, "mlx-lm cannot run it"),
        (None, LoadSettings(), EngineError, "is not a model directory"),
    ],
    ids=["architecture", "missing"],
)
async def test_what_cannot_load_says_why(tmp_path: Path, config: dict | None, settings: LoadSettings, error: type, message: str) -> None:
    model = tmp_path / "model"
    if config is not None:
        model.mkdir()
        (model / "config.json").write_text(json.dumps(config))
    with pytest.raises(error, match=message):
        await MlxBackend.load(ModelRef(name="m", format="safetensors", path=str(model)), LINUX, settings)


def test_the_dtype_setting_is_typed_and_checked_before_any_load() -> None:
    assert MlxBackend.engine_settings == {"dtype"}
    MlxBackend.check_engine_settings({"dtype": "bfloat16"})
    with pytest.raises(BadRequest, match="engine setting \"dtype\": Invalid enum value 'int4'"):
        MlxBackend.check_engine_settings({"dtype": "int4"})
