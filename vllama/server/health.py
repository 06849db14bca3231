"""Health checks for load balancers and orchestrators: the server, and one model's readiness."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, get, head
from litestar.response import Response

from vllama.server import serving


class ModelHealth(msgspec.Struct, kw_only=True, omit_defaults=True):
    model: str
    #: ``ready``, ``loading``, ``failed`` or ``unloaded``.
    status: str
    error: str = ""


@get("/health", tags=["server"], summary="Is the server up?")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@head("/health", tags=["server"], summary="Is the server up?")
async def health_head() -> None:
    return None


@get("/health/{model:path}", tags=["server"], summary="Can this model serve now?")
async def model_health(request: Request[Any, Any, Any], model: str) -> Response[ModelHealth]:
    """200 when the model is loaded and its engine alive; 503 while it loads, when its last
    load failed (with the error), or when it is not loaded; 404 for a model not installed."""
    v = serving.vllama_of(request)
    ref = await v.find(model.lstrip("/"))
    status, error = v.scheduler.readiness(ref.name)
    return Response(ModelHealth(model=ref.name, status=status, error=error), status_code=200 if status == "ready" else 503)


ROUTES = [health, health_head, model_health]
