"""What mlx-lm would misread in a model's config.json, caught before it loads.

transformers 5 writes the rope base (and any rope scaling) only inside ``rope_parameters``.
Model classes of mlx-lm 0.32 that read a top-level ``rope_theta`` then silently use their
default (10000): the model loads and writes fluent nonsense. :func:`overrides` returns the
values to pass to ``mlx_lm.load(model_config=...)`` so that the model reads what its config
means, or raises :class:`~vllama.errors.EngineError` when it cannot say.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from pathlib import Path
from typing import Any

from vllama.errors import EngineError


def read_config(model_dir: Path) -> dict[str, Any]:
    """The model's config.json, or an EngineError saying why it cannot be read."""
    path = model_dir / "config.json"
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError:
        raise EngineError(f"{model_dir.name}: not a model directory (no config.json)") from None
    except (OSError, ValueError) as e:
        raise EngineError(f"{model_dir.name}: unreadable config.json ({e})") from None
    if not isinstance(config, dict) or not isinstance(config.get("model_type"), str):
        raise EngineError(f"{model_dir.name}: config.json has no model_type")
    return config


def overrides(config: dict[str, Any], fields: Collection[str]) -> dict[str, Any]:
    """Config values to set so that a model class with ``fields`` (its ModelArgs) reads
    ``config`` as transformers does. Empty when it already does."""
    params = config.get("rope_parameters")
    if not params or "rope_parameters" in fields or "rope_theta" not in fields or "rope_theta" in config:
        return {}
    if not (isinstance(params, dict) and isinstance(params.get("rope_theta"), (int, float))):
        raise EngineError(
            "config.json gives rope_theta only inside rope_parameters, in a form mlx-lm cannot read "
            f'({json.dumps(params)[:120]}); add a top-level "rope_theta" to config.json'
        )
    fixed: dict[str, Any] = {"rope_theta": float(params["rope_theta"])}
    scaling = {k: v for k, v in params.items() if k != "rope_theta"}
    if scaling.get("rope_type", "default") != "default" and "rope_scaling" in fields and not config.get("rope_scaling"):
        fixed["rope_scaling"] = scaling
    return fixed
