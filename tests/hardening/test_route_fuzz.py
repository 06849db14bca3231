"""Every route of the real app answers random bodies, paths and queries with a 4xx in its own
error format, never a 5xx."""

from __future__ import annotations

import json
import re
from urllib.parse import quote

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
FIELDS = st.sampled_from(
    ["model", "prompt", "messages", "input", "options", "stream", "source", "destination", "from", "format", "keep_alive"]
)
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


#: Routes with a path parameter, and the GET and HEAD routes: fuzzed through the URL.
PATH_ROUTES = sorted(
    (method, route.path)
    for route in create_app().routes
    for method in getattr(route, "methods", ())
    if method in {"GET", "HEAD", "POST"} and ("{" in route.path or method != "POST")
)
SEGMENT = st.text(st.characters(codec="utf-8", exclude_characters="/?#"), max_size=80) | st.sampled_from(
    ["sha256:" + "0" * 64, "sha256-" + "a" * 64, "..", "%2e%2e", "smol:latest", "a" * 300, "x:" * 40]
)
QUERY = st.dictionaries(st.text(max_size=8), st.text(max_size=16), max_size=3)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(route=st.sampled_from(PATH_ROUTES), segment=SEGMENT, query=QUERY, body=st.binary(max_size=64))
def test_no_5xx_from_paths_and_queries(
    echo_server: ServerProcess, route: tuple[str, str], segment: str, query: dict[str, str], body: bytes
) -> None:
    method, template = route
    path = re.sub(r"\{[^}]*\}", lambda _: quote(segment, safe=":"), template)
    r = httpx.request(method, echo_server.url + path, params=query, content=body if method == "POST" else None, timeout=30)
    assert r.status_code < 500, (method, path, query, r.text)
    if r.status_code >= 400 and r.content and method != "HEAD" and not template.startswith("/openapi"):  # docs: HTML
        error = r.json()["error"]
        sent = r.request.url.path  # dot segments resolved: "/v1/models/.." is "/v1/", no route
        assert isinstance(error["message"] if sent.startswith("/v1/") and sent != "/v1/" else error, str)
