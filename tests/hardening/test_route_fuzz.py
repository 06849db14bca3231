"""Every route of the real app answers random bodies with a 4xx in its own error format, never a 5xx."""

from __future__ import annotations

import json

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vllama.server.app import create_app
from vllama.testing.server import ServerProcess

ROUTES = sorted(
    (method, route.path)
    for route in create_app().routes
    for method in getattr(route, "methods", ())
    if method in {"POST", "DELETE", "PUT"} and "{" not in route.path
)

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
    max_leaves=12,
)
FIELDS = st.sampled_from(["model", "prompt", "messages", "input", "options", "stream", "source", "destination", "from", "format", "keep_alive"])
BODIES = (
    JSON.map(lambda v: json.dumps(v).encode())
    | st.dictionaries(FIELDS, JSON, max_size=4).map(lambda v: json.dumps(v).encode())
    | st.binary(max_size=64)
)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(route=st.sampled_from(ROUTES), body=BODIES)
def test_no_5xx(echo_server: ServerProcess, route: tuple[str, str], body: bytes) -> None:
    method, path = route
    r = httpx.request(method, echo_server.url + path, content=body, headers={"content-type": "application/json"}, timeout=30)
    assert r.status_code < 500, (method, path, body, r.text)
    if r.status_code >= 400 and r.content:
        error = r.json()["error"]
        assert isinstance(error["message"] if path.startswith("/v1") else error, str)
