"""The API over real HTTP: uvicorn on a free port in the test's loop, real Redis, the
scripted model, and the embedded worker that ``memgrid serve`` runs by default."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator, Callable, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import redis.asyncio as aioredis
import uvicorn

from agents.scripted import ChatRequest, Outcome, Policy, ScriptedModel, echo
from orchestrator.api import ApiSettings, create_app


class _Server(uvicorn.Server):
    """uvicorn without signal handlers, telling when it accepts connections."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        self.ready.set()


# What the start_api fixture gives: start_api(model_url, embedding=..., **env) as http.
StartApi = Callable[..., contextlib.AbstractAsyncContextManager[httpx.AsyncClient]]


@dataclass
class Served:
    """A running API: its base URL and the scripted model behind it."""

    url: str
    model: ScriptedModel
    settings: ApiSettings


def loopback_socket() -> socket.socket:
    """A TCP socket bound to a free loopback port, for :func:`serve_api` (whose URL a test
    may need to know before the app starts, to hand it to tools)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextlib.asynccontextmanager
async def serve_api(settings: ApiSettings, sock: socket.socket | None = None) -> AsyncIterator[str]:
    """Serve the app on ``sock`` (by default a free loopback port: :func:`loopback_socket`)
    until the block ends, then close it; yields the base URL."""
    sock = sock if sock is not None else loopback_socket()
    port = int(sock.getsockname()[1])
    try:
        config = uvicorn.Config(
            create_app(settings), lifespan="on", log_config=None, access_log=False
        )
        server = _Server(config)
        task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
        ready = asyncio.ensure_future(server.ready.wait())
        await asyncio.wait({task, ready}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        if not server.ready.is_set():
            server.should_exit = True
            await task
            raise RuntimeError("the API did not start")
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True
            await task
    finally:
        sock.close()


async def job_finished(client: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    """The job, once completed or failed (within 20 s)."""
    with anyio.fail_after(20):
        while True:
            job: dict[str, Any] = (await client.get(f"/v1/jobs/{job_id}")).json()
            if job["status"] in ("completed", "failed"):
                return job
            await anyio.sleep(0.05)


def model_env(
    monkeypatch: pytest.MonkeyPatch, base_url: str, *, embedding: str | None = "hashing/384"
) -> None:
    """What a served API reads from the environment: the model endpoint at ``base_url``,
    ``embedding`` (left alone when None) and no Qdrant server (the embedded engine)."""
    monkeypatch.setenv("OPENAI_BASE_URL", base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "test")
    if embedding is not None:
        monkeypatch.setenv("MEMGRID_EMBEDDING", embedding)
    monkeypatch.delenv("MEMGRID_QDRANT_URL", raising=False)


@contextlib.asynccontextmanager
async def api_client(
    redis_url: str, *, client_timeout_s: float = 60, **settings: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """:func:`serve_api` with ``ApiSettings(redis_url=..., run_timeout_s=30, **settings)``,
    and a client of it."""
    options: dict[str, Any] = {"run_timeout_s": 30, **settings}
    async with (
        serve_api(ApiSettings(redis_url=redis_url, **options)) as url,
        httpx.AsyncClient(base_url=url, timeout=client_timeout_s) as http,
    ):
        yield http


@pytest.fixture
def start_api(
    redis_url: str,
    redis_client: aioredis.Redis,
    memgrid_home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> StartApi:
    """Serves the API on a flushed Redis and a private home (without the ``served`` fixture's
    tool environment): ``async with start_api(model_url, embedding=..., **env) as http``
    serves it with the model at ``model_url`` (:func:`model_env`) and ``env`` set, and yields
    a client of it."""

    @contextlib.asynccontextmanager
    async def start(
        model_url: str, *, embedding: str = "hashing/384", **env: str
    ) -> AsyncIterator[httpx.AsyncClient]:
        model_env(monkeypatch, model_url, embedding=embedding)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        async with api_client(redis_url, client_timeout_s=30) as http:
            yield http

    return start


class Hold:
    """For a test's policy: while ``active``, each model call stops until ``release``
    (``entered`` is set once one has stopped)."""

    def __init__(self) -> None:
        self.active = False
        self.entered = anyio.Event()
        self.release = anyio.Event()


@pytest.fixture
def hold() -> Hold:
    return Hold()


def policy_echo(request: ChatRequest) -> Outcome:
    return echo(request)


@pytest.fixture
def policy() -> Policy:
    """The scripted model's policy; test modules override this fixture."""
    return policy_echo


@pytest.fixture
def api_key() -> str | None:
    """``MEMGRID_API_KEY`` of the served API; override to test auth."""
    return None


@pytest.fixture
async def served(
    redis_client: aioredis.Redis,
    redis_url: str,
    memgrid_home: Path,
    monkeypatch: pytest.MonkeyPatch,
    policy: Policy,
    api_key: str | None,
    default_tool_env: str,
) -> AsyncIterator[Served]:
    async with ScriptedModel.serve(policy) as model:
        model_env(monkeypatch, model.base_url)
        settings = ApiSettings(redis_url=redis_url, api_key=api_key, run_timeout_s=30)
        async with serve_api(settings) as url:
            yield Served(url=url, model=model, settings=settings)


@pytest.fixture
async def client(served: Served) -> AsyncIterator[httpx.AsyncClient]:
    headers = (
        {"Authorization": f"Bearer {served.settings.api_key}"} if served.settings.api_key else {}
    )
    async with httpx.AsyncClient(base_url=served.url, headers=headers, timeout=30) as http:
        yield http


# --- helpers for the tests ---------------------------------------------------------------


async def make_agent(client: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    body = {"name": "sam", "memory_blocks": [{"label": "human", "value": "Name: Bob"}], **fields}
    response = await client.post("/v1/agents/", json=body)
    assert response.status_code == 200, response.text
    agent: dict[str, Any] = response.json()
    return agent


async def say_to(
    client: httpx.AsyncClient, agent_id: str, text: str, **fields: Any
) -> dict[str, Any]:
    body = {"messages": [{"role": "user", "content": text}], **fields}
    response = await client.post(f"/v1/agents/{agent_id}/messages", json=body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def sse_frames(
    client: httpx.AsyncClient, path: str, body: dict[str, Any] | None = None
) -> list[Any]:
    """The ``data:`` payloads of an SSE response, JSON-decoded except ``[DONE]``."""
    frames: list[Any] = []
    async with client.stream("POST", path, json=body or {}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                data = line[len("data: ") :]
                frames.append(data if data == "[DONE]" else json.loads(data))
    return frames
