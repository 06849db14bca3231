"""The browser guards: origin patterns (``*`` the only wildcard, everything else literal) and the
Host check that a loopback server makes against DNS rebinding."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from litestar import Litestar, get
from litestar.middleware import DefineMiddleware
from litestar.testing import TestClient

from vllama.server.cors import DEFAULT_ORIGINS, OriginGuard, is_local_host, origin_pattern

#: Origin-like text, rich in the characters glob syntax gives a meaning to.
TEXT = st.text(alphabet=st.sampled_from("ab:/.-[]!?^\\1*"), max_size=12)
LITERAL = st.text(alphabet=st.sampled_from("ab:/.-[]!?^\\1"), max_size=12)


def matches(pattern: str, origin: str) -> bool:
    return origin_pattern(pattern).fullmatch(origin) is not None


@given(LITERAL, LITERAL)
def test_a_pattern_without_a_star_matches_itself_only(pattern: str, origin: str) -> None:
    assert matches(pattern, pattern)
    assert matches(pattern, origin) == (origin == pattern)


@given(LITERAL, LITERAL, LITERAL)
def test_a_star_matches_any_run_of_characters(prefix: str, middle: str, suffix: str) -> None:
    assert matches(f"{prefix}*{suffix}", prefix + middle + suffix)


@given(LITERAL, LITERAL, TEXT)
def test_a_starred_pattern_matches_only_its_prefix_and_suffix(prefix: str, suffix: str, origin: str) -> None:
    expected = len(origin) >= len(prefix) + len(suffix) and origin.startswith(prefix) and origin.endswith(suffix)
    assert matches(f"{prefix}*{suffix}", origin) == expected


@given(st.integers(min_value=1, max_value=65535), st.sampled_from(["http", "https"]))
def test_default_origins_allow_ipv6_loopback_on_any_port(port: int, scheme: str) -> None:
    guard = OriginGuard(app=None, origins=())
    assert guard.allowed(f"{scheme}://[::1]:{port}") and guard.allowed(f"{scheme}://[::1]")
    assert guard.allowed(f"{scheme}://localhost:{port}") and guard.allowed(f"{scheme}://127.0.0.1:{port}")


@pytest.mark.parametrize(
    "origin",
    [
        "http://:",
        "http://1",
        "http://[::2]:80",
        "http://[::1].evil.example",
        "https://evil.example",
        "http://localhost.evil.example",
        "http://127.0.0.1.evil.example:80",
        "ftp://localhost",
    ],
)
def test_default_origins_refuse_look_alikes(origin: str) -> None:
    assert not OriginGuard(app=None).allowed(origin)


def test_configured_patterns_add_to_the_defaults() -> None:
    guard = OriginGuard(app=None, origins=("https://*.example.com", "chrome-extension://[abc]"))
    assert guard.allowed("https://app.example.com") and not guard.allowed("https://example.org")
    assert guard.allowed("chrome-extension://[abc]") and not guard.allowed("chrome-extension://a")
    assert all(guard.allowed(p.replace("*", "x")) for p in DEFAULT_ORIGINS)


# -- Host names on a loopback server ---------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    [
        "localhost",
        "localhost:11434",
        "LOCALHOST.",
        "app.localhost:3000",
        "box.local",
        "svc.internal",
        "127.0.0.1",
        "127.0.0.1:11434",
        "[::1]",
        "[::1]:11434",
        "::1",
        "10.1.2.3:80",
        "192.168.0.7",
        "0.0.0.0:11434",
        "[fe80::1]:80",
        socket.gethostname(),
    ],
)
def test_local_host_names_pass(host: str) -> None:
    assert is_local_host(host)


@pytest.mark.parametrize(
    "host",
    [
        "evil.example",
        "evil.example:11434",
        "localhost.evil.example",
        "8.8.8.8",
        "[2606:4700:4700::1111]:80",
        "local",
        "example.localhost.com",
        "",
    ],
)
def test_other_host_names_are_refused(host: str) -> None:
    assert not is_local_host(host)


@get("/ping", media_type="text/plain")
async def ping() -> str:
    return "pong"


def guarded(check_host: bool) -> TestClient[Any]:
    return TestClient(Litestar([ping], middleware=[DefineMiddleware(OriginGuard, check_host=check_host)]))


def test_a_loopback_server_refuses_foreign_hosts_with_an_empty_403() -> None:
    with guarded(check_host=True) as client:
        assert client.get("/ping", headers={"Host": "localhost:11434"}).text == "pong"
        assert client.get("/ping", headers={"Host": "[::1]:11434"}).text == "pong"
        refused = client.get("/ping", headers={"Host": "rebind.evil.example"})
        assert (refused.status_code, refused.content) == (403, b"")


def test_a_server_bound_elsewhere_does_not_check_the_host() -> None:
    with guarded(check_host=False) as client:
        assert client.get("/ping", headers={"Host": "my-server.example.com"}).text == "pong"


def test_ipv6_loopback_origins_get_cors_headers() -> None:
    with guarded(check_host=True) as client:
        r = client.get("/ping", headers={"Origin": "http://[::1]:5173"})
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "http://[::1]:5173"
        preflight = client.options("/ping", headers={"Origin": "http://[::1]", "Access-Control-Request-Method": "GET"})
        assert preflight.status_code == 204 and "x-api-key" in preflight.headers["access-control-allow-headers"]
