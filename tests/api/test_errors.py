"""Bad input gets a 4xx in Ollama's format, and the server keeps serving."""

from __future__ import annotations

import httpx
import pytest

from vllama.testing.server import ServerProcess

GOOD = {"model": "echo", "prompt": "hi", "stream": False}

CASES = [
    ("POST", "/api/generate", b"", 400, "missing request body"),
    ("POST", "/api/generate", b"{not json", 400, "invalid JSON"),
    ("POST", "/api/generate", b'{"model": 5}', 400, "Expected `str`, got `int` - at `$.model`"),
    (
        "POST",
        "/api/generate",
        b'{"model": "echo", "prompt": "x", "stream": "yes"}',
        400,
        "Expected `bool | null`, got `str` - at `$.stream`",
    ),
    ("POST", "/api/generate", b'{"model": "nope", "prompt": "x"}', 404, "model 'nope' not found"),
    ("POST", "/api/generate", b'{"model": "../../etc/passwd", "prompt": "x"}', 404, "model '../../etc/passwd' not found"),
    ("POST", "/api/generate", b'{"model": "", "prompt": "x"}', 400, "model is required"),
    (
        "POST",
        "/api/generate",
        b'{"model": "echo", "prompt": "x", "options": {"temperature": "hot"}}',
        400,
        'option "temperature" must be of type float',
    ),
    (
        "POST",
        "/api/generate",
        b'{"model": "echo", "prompt": "x", "options": {"top_k": "many"}}',
        400,
        'option "top_k" must be of type integer',
    ),
    (
        "POST",
        "/api/generate",
        b'{"model": "echo", "prompt": "x", "options": {"num_predict": -5}}',
        400,
        'option "num_predict" must be -1, -2 or between 0 and',
    ),
    (
        "POST",
        "/api/generate",
        b'{"model": "echo", "prompt": "x", "options": {"top_p": 7}}',
        400,
        'option "top_p" must be between 0 and 1, got 7.0',
    ),
    (
        "POST",
        "/api/generate",
        b'{"model": "echo", "prompt": "x", "options": {"temperature": -5}}',
        400,
        'option "temperature" must be >= 0',
    ),
    ("POST", "/api/chat", b'{"model": "echo", "messages": [], "options": {"top_k": -1}}', 400, 'option "top_k" must be between 0 and'),
    (
        "POST",
        "/api/chat",
        b'{"model": "echo", "messages": [], "options": {"num_batch": 1000000000}}',
        400,
        'option "num_batch" must be between 1 and 16384',
    ),
    ("POST", "/api/embed", b'{"model": "echo", "input": "x", "options": {"num_ctx": 0}}', 400, 'option "num_ctx" must be between 1 and'),
    (
        "POST",
        "/api/generate",
        b'{"model": "echo", "prompt": "x", "options": {"echo_delay": 1000}}',
        400,
        'engine setting "echo_delay": Expected `float` <= 60.0, got 1000',
    ),
    ("POST", "/api/generate", b'{"model": "echo", "prompt": "x", "keep_alive": "300"}', 400, "missing unit"),
    ("POST", "/api/generate", b'{"model": "echo", "prompt": "x", "raw": true, "system": "s"}', 400, "raw mode does not support"),
    ("POST", "/api/generate", b'{"model": "echo", "prompt": "x", "top_logprobs": 21}', 400, "top_logprobs must be between 0 and 20"),
    ("POST", "/api/generate", b'{"model": "echo", "prompt": "x", "format": "yaml"}', 400, "invalid format"),
    ("POST", "/api/generate", b'{"model": "echo", "prompt": "x", "think": "extreme"}', 400, 'invalid think value: "extreme"'),
    ("POST", "/api/chat", b'{"model": "echo", "messages": [], "think": "lots"}', 400, 'invalid think value: "lots"'),
    ("POST", "/api/generate", b'{"model": "echo", "prompt": "x", "images": ["***"]}', 400, "base64"),
    ("POST", "/api/chat", b'{"model": "echo", "messages": [{"role": "robot", "content": "x"}]}', 400, "invalid role"),
    ("POST", "/api/chat", b'{"model": "echo", "messages": "hello"}', 400, "got `str` - at `$.messages`"),
    ("POST", "/api/embed", b'{"model": "echo", "input": 5}', 400, "Expected"),
    ("POST", "/api/embed", b'{"model": "echo", "input": "x", "dimensions": 100}', 400, "dimensions must be between 1 and 8"),
    ("GET", "/api/generate", None, 405, "method not allowed"),
    ("POST", "/api/tags", None, 405, "method not allowed"),
    ("POST", "/api/show", b'{"model": "nope"}', 404, "model 'nope' not found"),
    ("POST", "/api/copy", b'{"source": "nope", "destination": "x"}', 404, 'model "nope" not found'),
    ("POST", "/api/copy", b'{"source": "echo", "destination": "bad name!"}', 400, "invalid model name"),
    ("DELETE", "/api/delete", b'{"model": "nope"}', 404, "model 'nope' not found"),
    ("HEAD", "/api/blobs/sha256:" + "0" * 64, None, 404, None),
    ("HEAD", "/api/blobs/sha256:xyz", None, 400, None),
    ("POST", "/api/blobs/sha256:" + "0" * 64, b"data", 400, 'digest mismatch, expected "sha256:' + "0" * 64),
    ("POST", "/api/blobs/md5:abc", b"data", 400, "invalid digest format"),
    ("POST", "/api/create", b'{"model": "x", "files": {"a.gguf": "sha256:' + b"1" * 64 + b'"}}', 404, "not found"),
    ("POST", "/api/create", b'{"model": "x"}', 400, "neither 'from' nor 'files'"),
    (
        "POST",
        "/api/create",
        b'{"model": "x", "from": "echo", "parameters": {"temperature": "hot"}}',
        400,
        'option "temperature" must be of type float',
    ),
    ("POST", "/api/create", b'{"model": "x", "from": "echo", "quantize": "q4_K_M"}', 400, "quantizing"),
    ("POST", "/api/create", b'{"model": "x", "from": "echo", "parameters": {"top_p": 7}}', 400, 'option "top_p" must be between 0 and 1'),
    (
        "POST",
        "/api/create",
        b'{"model": "x", "from": "echo", "parameters": {"echo_delay": -1}}',
        400,
        'engine setting "echo_delay": Expected `float` >= 0.0',
    ),
]


@pytest.mark.parametrize(("method", "path", "body", "status", "message"), CASES, ids=[f"{c[1]}-{i}" for i, c in enumerate(CASES)])
def test_bad_input(echo_server: ServerProcess, method: str, path: str, body: bytes | None, status: int, message: str | None) -> None:
    r = httpx.request(method, echo_server.url + path, content=body, headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    if message is not None:
        assert message in r.json()["error"]
    assert httpx.post(echo_server.url + "/api/generate", json=GOOD).json()["response"] == "hi"


def test_bad_create_file_leaves_nothing_listed(echo_server: ServerProcess, tmp_path) -> None:
    import hashlib

    junk = b"this is not a model at all"
    digest = "sha256:" + hashlib.sha256(junk).hexdigest()
    assert httpx.post(f"{echo_server.url}/api/blobs/{digest}", content=junk).status_code == 201
    r = httpx.post(echo_server.url + "/api/create", json={"model": "junk", "files": {"junk.gguf": digest}, "stream": False})
    assert r.status_code == 400 and "not a GGUF file" in r.json()["error"]
    assert "junk:latest" not in [m["name"] for m in httpx.get(echo_server.url + "/api/tags").json()["models"]]


def test_cors_refuses_unknown_origins_with_an_empty_403(echo_server: ServerProcess) -> None:
    r = httpx.get(echo_server.url + "/api/tags", headers={"Origin": "https://evil.example"})
    assert r.status_code == 403 and r.content == b""
    r = httpx.get(echo_server.url + "/api/tags", headers={"Origin": "http://localhost:3000"})
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "http://localhost:3000"
    r = httpx.options(echo_server.url + "/api/chat", headers={"Origin": "vscode-webview://abc", "Access-Control-Request-Method": "POST"})
    assert r.status_code == 204 and "POST" in r.headers["access-control-allow-methods"]


def test_openapi_schema_is_served(echo_server: ServerProcess) -> None:
    schema = httpx.get(echo_server.url + "/openapi/openapi.json").json()
    assert {"/api/generate", "/api/chat", "/v1/chat/completions", "/api/tags"} <= set(schema["paths"])


def test_foreign_host_names_are_refused_on_a_loopback_server(echo_server: ServerProcess) -> None:
    """Ollama's guard against DNS rebinding: a page on evil.example resolving to 127.0.0.1."""
    r = httpx.get(echo_server.url + "/api/tags", headers={"Host": "evil.example:11434"})
    assert r.status_code == 403 and r.content == b""
    for host in ("localhost:11434", "127.0.0.1", "box.local", "[::1]:11434"):
        assert httpx.get(echo_server.url + "/api/tags", headers={"Host": host}).status_code == 200
