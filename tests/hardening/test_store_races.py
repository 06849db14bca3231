"""The store under concurrent clients and crashes, over real HTTP: copy/delete churn, creates
of one name, and ``kill -9`` of the server while it writes. Never a 5xx, never half a model."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from vllama.testing.server import ServerProcess, create_model, wait_for

Start = Callable[..., ServerProcess]


def leftovers(models_dir: Path) -> list[str]:
    """Partial files anywhere in the store."""
    return sorted(str(p.relative_to(models_dir)) for p in models_dir.rglob(".partial-*"))


def blob_names(models_dir: Path) -> set[str]:
    return {p.name for p in (models_dir / "blobs").iterdir()}


def tags(url: str) -> list[str]:
    response = httpx.get(url + "/api/tags", timeout=30)
    assert response.status_code == 200, response.text
    return sorted(m["name"] for m in response.json()["models"])


def assert_every_listed_model_is_whole(url: str) -> None:
    for name in tags(url):
        response = httpx.post(url + "/api/show", json={"model": name}, timeout=30)
        assert response.status_code == 200, (name, response.text)


def churn(url: str, client: int, rounds: int, statuses: Counter[int], stop: threading.Event | None = None) -> None:
    """Copy the base model to a name of this client's and to a name every client fights over,
    then delete both, ``rounds`` times."""
    with httpx.Client(base_url=url, timeout=30) as http:
        for _ in range(rounds):
            if stop is not None and stop.is_set():
                return
            for response in (
                http.post("/api/copy", json={"source": "echo", "destination": f"mine-{client}"}),
                http.post("/api/copy", json={"source": f"mine-{client}", "destination": "shared"}),
                http.post("/api/show", json={"model": "shared"}),
                http.request("DELETE", "/api/delete", json={"model": "shared"}),
                http.request("DELETE", "/api/delete", json={"model": f"mine-{client}"}),
                http.get("/api/tags"),
            ):
                statuses[response.status_code] += 1


@pytest.fixture
def server(tmp_path: Path, tiny_gguf: Path, echo_server_with: Start) -> Iterator[ServerProcess]:
    with echo_server_with(tmp_path) as server:
        create_model(server.url, "echo", tiny_gguf)
        yield server


def test_copy_delete_churn_with_four_clients_gives_no_5xx(server: ServerProcess) -> None:
    statuses: Counter[int] = Counter()
    listings: list[list[str]] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            listings.append(tags(server.url))

    watcher = threading.Thread(target=watch)
    watcher.start()
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda i: churn(server.url, i, 20, statuses), range(4)))
    stop.set()
    watcher.join()

    assert sum(statuses.values()) == 4 * 20 * 6
    assert set(statuses) <= {200, 404}, statuses  # 404: another client deleted "shared" first
    assert statuses[200] >= 4 * 20 * 4  # each client's own copies, deletes and listings all succeed
    assert listings and all("echo:latest" in names for names in listings)
    assert tags(server.url) == ["echo:latest"]
    assert_every_listed_model_is_whole(server.url)
    assert leftovers(server.models_dir) == []


def test_concurrent_creates_of_one_name(server: ServerProcess) -> None:
    systems = [f"system {i}" for i in range(6)]
    before = blob_names(server.models_dir)

    def create(system: str) -> int:
        body = {"model": "same", "from": "echo", "system": system, "stream": False}
        return httpx.post(server.url + "/api/create", json=body, timeout=60).status_code

    with ThreadPoolExecutor(6) as pool:
        assert list(pool.map(create, systems)) == [200] * 6
    shown = httpx.post(server.url + "/api/show", json={"model": "same"}, timeout=30).json()
    assert shown["system"] in systems  # the last writer's whole model, not a mix
    assert tags(server.url) == ["echo:latest", "same:latest"]
    httpx.request("DELETE", server.url + "/api/delete", json={"model": "same"}, timeout=30).raise_for_status()
    assert tags(server.url) == ["echo:latest"]
    assert blob_names(server.models_dir) == before  # no replaced model's system layer is left behind


def test_kill_during_create_leaves_nothing_after_restart(tmp_path: Path, tiny_gguf: Path, echo_server_with: Start) -> None:
    models_dir, files = tmp_path / "models", tmp_path / "files"
    files.mkdir()
    with (files / "big.gguf").open("wb") as f:
        f.truncate(1 << 30)  # sparse: quick to make, a second or more to copy in
    server = echo_server_with(tmp_path, VLLAMA_CREATE_DIRS=str(files))
    try:
        create_model(server.url, "echo", tiny_gguf)
        before = blob_names(models_dir)
        body = {"model": "big", "from": str(files / "big.gguf")}
        with httpx.stream("POST", server.url + "/api/create", json=body, timeout=60) as response:
            assert "copying file big.gguf" in next(response.iter_lines())
            assert wait_for(lambda: leftovers(models_dir) != [])
            server.kill()  # while the copy is being written
    finally:
        server.kill()
    with echo_server_with(tmp_path) as server:  # a new server on the same store, as after a crash
        assert tags(server.url) == ["echo:latest"]
        assert leftovers(models_dir) == []
        assert blob_names(models_dir) == before
        assert_every_listed_model_is_whole(server.url)


def test_kill_during_upload_leaves_nothing_after_restart(tmp_path: Path, echo_server_with: Start) -> None:
    models_dir = tmp_path / "models"
    server = echo_server_with(tmp_path)
    sent = threading.Event()

    def body() -> Iterator[bytes]:
        for i in range(1000):
            if i == 4:
                sent.set()
            yield bytes(1 << 20)
            time.sleep(0.01)

    def upload() -> None:
        try:
            httpx.post(server.url + "/api/blobs/sha256:" + "0" * 64, content=body(), timeout=60)
        except httpx.TransportError:
            pass

    uploader = threading.Thread(target=upload)
    uploader.start()
    try:
        assert sent.wait(30)
        assert wait_for(lambda: leftovers(models_dir) != [])
        server.kill()
    finally:
        server.kill()
        uploader.join()
    with echo_server_with(tmp_path) as server:  # a new server on the same store, as after a crash
        assert tags(server.url) == []
        assert leftovers(models_dir) == [] and blob_names(models_dir) == set()


def test_kill_during_copy_delete_churn_leaves_a_whole_store(tmp_path: Path, tiny_gguf: Path, echo_server_with: Start) -> None:
    models_dir = tmp_path / "models"
    server = echo_server_with(tmp_path)
    statuses: Counter[int] = Counter()
    stop = threading.Event()

    def client(i: int) -> None:
        try:
            churn(server.url, i, 1000, statuses, stop)
        except httpx.TransportError:  # the server died under it
            pass

    try:
        create_model(server.url, "echo", tiny_gguf)
        with ThreadPoolExecutor(4) as pool:
            running = [pool.submit(client, i) for i in range(4)]
            assert wait_for(lambda: statuses[200] > 40, timeout=60)
            server.kill()
            stop.set()
            for future in running:
                future.result()
    finally:
        server.kill()
    assert set(statuses) <= {200, 404}, statuses
    with echo_server_with(tmp_path) as server:  # a new server on the same store, as after a crash
        names = tags(server.url)
        assert "echo:latest" in names and set(names) <= {"echo:latest", "shared:latest", *(f"mine-{i}:latest" for i in range(4))}
        assert_every_listed_model_is_whole(server.url)
        assert leftovers(models_dir) == []
        after: Counter[int] = Counter()
        churn(server.url, 0, 3, after)
        assert set(after) <= {200, 404}, after
