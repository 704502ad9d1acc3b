"""The server engine against servers that fail: every failure names the server and what to check.

No Qdrant server can be installed here (see DESIGN.md), so the servers are real HTTP servers on
loopback that answer every request with one status (an overloaded or misconfigured Qdrant), or
a port where nothing listens. They also show what qdrant-client sends: the API key.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from storage.embeddings import hash_embed
from storage.passages import PassageServerError, ServerPassageStore, open_passage_store
from storage.passages._server_errors import display_url
from storage.records import Passage
from storage.settings import StorageSettings
from tests._util import serving


@dataclass
class Answering:
    """An HTTP server answering each request with ``status`` and a JSON body."""

    url: str
    status: int
    headers: list[dict[str, str]] = field(default_factory=list)


def _handler(server: Answering) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            server.headers.append({k.lower(): v for k, v in self.headers.items()})
            self.rfile.read(int(self.headers.get("content-length") or 0))
            payload = b'{"status": {"error": "Service is overloaded"}, "time": 0.0}'
            self.send_response(server.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_PUT = do_POST = do_DELETE = do_PATCH = _answer

        def log_message(self, format: str, *args: object) -> None:
            pass  # no request lines on stderr

    return Handler


@pytest.fixture(params=[503, 401])
def answering(request: pytest.FixtureRequest) -> Iterator[Answering]:
    server = Answering(url="", status=int(request.param))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(server))
    server.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    with serving(httpd):
        yield server


def _closed_port() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"  # closed again when this returns


def _passage() -> Passage:
    return Passage(id="passage-1", owner_id="agent-a", text="the sky is blue")


async def _each_call(store: ServerPassageStore) -> list[PassageServerError]:
    vector = hash_embed("the sky", 16)
    calls = [
        lambda: store.insert([_passage()], [vector]),
        lambda: store.search("agent-a", vector),
        lambda: store.list("agent-a"),
        lambda: store.get("agent-a", "passage-1"),
        lambda: store.count("agent-a"),
        lambda: store.tags("agent-a"),
        lambda: store.delete("agent-a", ["passage-1"]),
        lambda: store.delete_owner("agent-a"),
    ]
    errors = []
    for call in calls:
        with pytest.raises(PassageServerError) as caught:
            await call()
        errors.append(caught.value)
    return errors


async def test_an_unreachable_server_is_named_in_every_error() -> None:
    url = _closed_port()
    store = ServerPassageStore(url, timeout=5)
    try:
        for error in await _each_call(store):
            assert f"Qdrant server at {url} could not be reached" in str(error)
            assert "MEMGRID_QDRANT_URL" in str(error)
    finally:
        await store.aclose()


async def test_a_failing_server_is_named_with_its_answer(answering: Answering) -> None:
    with pytest.warns(UserWarning, match="insecure connection"):  # an API key over plain http
        store = open_passage_store(
            StorageSettings(home=Path("."), qdrant_url=answering.url, qdrant_api_key="s3cret")
        )
    assert isinstance(store, ServerPassageStore)
    try:
        errors = await _each_call(store)
    finally:
        await store.aclose()
    for error in errors:
        message = str(error)
        assert message.startswith(f"Qdrant server at {answering.url} ")
        if answering.status == 401:
            assert "refused the request (401 Unauthorized)" in message
            assert "MEMGRID_QDRANT_API_KEY" in message
        else:
            assert "answered 503 Service Unavailable" in message
            assert "Service is overloaded" in message
    # MEMGRID_QDRANT_API_KEY reaches the server with every request.
    assert answering.headers
    assert {h.get("api-key") for h in answering.headers} == {"s3cret"}


def test_urls_in_messages_carry_no_credentials() -> None:
    assert display_url("https://user:pw@qdrant.example:6333/x") == "https://qdrant.example:6333/x"
    assert display_url("http://qdrant:6333") == "http://qdrant:6333"
