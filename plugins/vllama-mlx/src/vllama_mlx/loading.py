"""Load a model directory with mlx-lm, after checking its config for what mlx-lm would misread."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from vllama.errors import EngineError
from vllama.types import ModelRef
from vllama_mlx.batch_loop import Loaded
from vllama_mlx.config_check import overrides, read_config

log = logging.getLogger("vllama.mlx")


#: Values of the ``dtype`` engine setting (vLLM's names): the MLX type to cast to; None keeps the weights' own.
DTYPES: dict[str, str | None] = {
    "auto": None,
    "float32": "float32",
    "float": "float32",
    "float16": "float16",
    "half": "float16",
    "bfloat16": "bfloat16",
}


def load_model(ref: ModelRef, dtype: str = "auto") -> Loaded:
    """The model and tokenizer of ``ref`` (a local directory), its floating-point weights cast
    to ``dtype``; EngineError when they cannot load."""
    import mlx.core as mx
    from mlx_lm import load
    from mlx_lm.utils import _get_classes

    path = Path(ref.path)
    if not path.is_dir():
        raise EngineError(f"failed to load model {ref.name}: {path} is not a model directory")
    config = read_config(path)
    try:  # the model classes mlx_lm.load would pick for this config
        _, args_class = _get_classes(config)
    except ValueError as e:
        raise EngineError(f"failed to load model {ref.name}: mlx-lm cannot run it ({e})") from None
    fixes = overrides(config, {f.name for f in dataclasses.fields(args_class)})
    if fixes:
        log.warning("%s: config.json keeps %s only in rope_parameters; passing it to mlx-lm", ref.name, ", ".join(fixes))
    try:
        model, tokenizer = load(str(path), model_config=fixes or None)
    except (ValueError, OSError, KeyError) as e:
        raise EngineError(f"failed to load model {ref.name}: {e}") from None
    if (cast := DTYPES[dtype]) is not None:
        model.set_dtype(getattr(mx, cast))
    return Loaded(model, tokenizer)
