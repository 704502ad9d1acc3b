"""Prometheus metrics, scraped with httpx during real turns (scripted model over HTTP): the
API's ``GET /metrics`` (its embedded worker's numbers) and a ``memgrid worker --metrics-port``
subprocess's endpoint. Names are those of docs/metrics.md."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import httpx
import pytest
import redis.asyncio as aioredis
from anyio.abc import Process
from prometheus_client.parser import text_string_to_metric_families

from agents.scripted import (
    ChatRequest,
    Outcome,
    Policy,
    ScriptedModel,
    ServerError,
    echo,
    faults_then,
    say,
    tool_call,
)
from orchestrator.api import ApiSettings
from tests.api.conftest import make_agent, model_env, say_to, serve_api

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]

# Every name docs/metrics.md lists, as exposed (counters with their _total suffix).
NAMES = {
    "memgrid_runs_total",
    "memgrid_failed_total",
    "memgrid_dead_lettered_total",
    "memgrid_dead_letters_trimmed_total",
    "memgrid_preempted_total",
    "memgrid_lease_expired_total",
    "memgrid_lease_renewals_total",
    "memgrid_lease_renew_late_max_seconds",
    "memgrid_lease_renew_max_seconds",
    "memgrid_lease_loop_lag_max_seconds",
    "memgrid_workers",
    "memgrid_worker_busy_slots",
    "memgrid_step_duration_seconds_count",
    "memgrid_step_duration_seconds_bucket",
    "memgrid_model_call_duration_seconds_count",
    "memgrid_ready_signals",
    "memgrid_ready_oldest_unread_age_seconds",
    "memgrid_dead_letters",
}


ROLL_DICE = "def roll_dice(sides: int):\n    return f'rolled {sides}'\n"


def dice_or_echo(request: ChatRequest) -> Outcome:
    """ "roll" calls the custom tool roll_dice (run in the sandbox); anything else is echoed."""
    if request.last_role == "user" and request.last_user_text == "roll":
        return tool_call("roll_dice", {"sides": 6}, request_heartbeat=True)
    if request.last_tool_result is not None:
        return say(request.last_tool_result.content)
    return echo(request)


@pytest.fixture
def policy() -> Policy:
    """The first model request fails with a 500 (retried), the rest as dice_or_echo."""
    return faults_then(ServerError(), then=dice_or_echo)


async def scrape(http: httpx.AsyncClient, url: str) -> Samples:
    response = await http.get(url)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def names(samples: Samples) -> set[str]:
    return {name for name, _labels in samples}


def documented() -> set[str]:
    """The names in the first column of docs/metrics.md's tables."""
    text = (Path(__file__).parents[2] / "docs" / "metrics.md").read_text()
    return set(re.findall(r"^\| `(memgrid_\w+)` \|", text, re.MULTILINE))


def family_names(samples: Samples) -> set[str]:
    """Sample names as documented: histograms by their base name, no _created series."""
    out = set()
    for name in names(samples):
        if not name.endswith("_created"):
            out.add(re.sub(r"_(bucket|sum|count)$", "", name))
    return out


async def test_api_metrics_count_turns_steps_model_calls_and_errors(
    client: httpx.AsyncClient,
) -> None:
    before = await scrape(client, "/metrics")  # counters are per process: compare deltas
    created = await client.put("/v1/tools/", json={"source_code": ROLL_DICE})
    assert created.status_code == 200, created.text
    agent = await make_agent(client, tools=["roll_dice"])
    for text in ("one", "roll"):
        await say_to(client, agent["id"], text)
    after = await scrape(client, "/metrics")

    assert names(after) >= NAMES, sorted(NAMES - names(after))
    exposed = family_names(after) | {"memgrid_sandbox_limit_hits_total"}  # no limit was hit
    assert exposed == documented(), exposed ^ documented()
    delta = {name: value(after, name) - value(before, name) for name in NAMES}
    assert delta["memgrid_runs_total"] == 2
    assert delta["memgrid_step_duration_seconds_count"] == 3  # "roll" took two steps
    # Three steps' model calls plus the one answered with a 500 (and retried).
    assert delta["memgrid_model_call_duration_seconds_count"] == 4
    runs = "memgrid_sandbox_run_duration_seconds_count"
    ok = {"status": "success"}
    assert value(after, runs, **ok) - value(before, runs, **ok) == 1
    errors = "memgrid_model_errors_total"
    kind = {"kind": "server_error"}
    assert value(after, errors, **kind) - value(before, errors, **kind) == 1
    assert value(after, "memgrid_workers") >= 1
    assert value(after, "memgrid_ready_oldest_unread_age_seconds") >= 0


class TestWithApiKey:
    @pytest.fixture
    def api_key(self) -> str | None:
        return "s3cret"

    async def test_metrics_need_the_api_key(self, client: httpx.AsyncClient) -> None:
        async with httpx.AsyncClient(base_url=str(client.base_url)) as anonymous:
            refused = await anonymous.get("/metrics")
        assert refused.status_code == 401
        assert "MEMGRID_API_KEY" in refused.text
        await scrape(client, "/metrics")  # the bearer token Prometheus can send


@pytest.fixture
async def api_without_worker(
    redis_client: aioredis.Redis,
    redis_url: str,
    memgrid_home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[tuple[str, ScriptedModel]]:
    async with ScriptedModel.serve(echo) as model:
        model_env(monkeypatch, model.base_url)
        settings = ApiSettings(redis_url=redis_url, worker=False, run_timeout_s=30)
        async with serve_api(settings) as url:
            yield url, model


async def _metrics_url(worker: Process, seen: bytearray) -> str:
    """The address the worker prints once it serves its metrics."""
    assert worker.stderr is not None
    with anyio.fail_after(60):
        while (found := re.search(rb"metrics at (http://\S+/metrics)", seen)) is None:
            seen += await worker.stderr.receive()
    return found.group(1).decode()


async def test_a_worker_serves_its_metrics_on_the_port_asked(
    api_without_worker: tuple[str, ScriptedModel], redis_url: str, memgrid_home: Path
) -> None:
    api_url, model = api_without_worker
    env = _env()
    env |= {
        "MEMGRID_REDIS_URL": redis_url,
        "MEMGRID_HOME": str(memgrid_home),
        "OPENAI_BASE_URL": model.base_url,
        "OPENAI_API_KEY": "test",
        "MEMGRID_EMBEDDING": "hashing/384",
        "MEMGRID_LOG_LEVEL": "WARNING",
    }
    argv = [sys.executable, "-m", "orchestrator.cli", "worker", "--metrics-port", "0"]
    seen = bytearray()
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as http:
        agent = await make_agent(http)
        queued = await http.post(
            f"/v1/agents/{agent['id']}/messages/async",
            json={"messages": [{"role": "user", "content": "first"}]},
        )
        assert queued.status_code == 200, queued.text
        lagging = await scrape(http, "/metrics")  # no worker yet: the agent waits for one
        async with await anyio.open_process(
            argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL
        ) as worker:
            try:
                metrics_url = await _metrics_url(worker, seen)
                await say_to(http, agent["id"], "second")  # runs after "first", in the worker
                after = await _scrape_until(http, metrics_url, "memgrid_runs_total", 2)
                api_side = await scrape(http, "/metrics")
            finally:
                worker.terminate()
                with anyio.fail_after(30):
                    await worker.wait()
                    assert worker.stderr is not None
                    async for chunk in worker.stderr:
                        seen += chunk
    assert value(lagging, "memgrid_ready_signals") == 1
    assert 0 <= value(lagging, "memgrid_ready_oldest_unread_age_seconds") < 60
    assert names(after) >= NAMES, sorted(NAMES - names(after))
    assert value(after, "memgrid_runs_total") == 2  # a new process: its counters start at 0
    assert value(after, "memgrid_step_duration_seconds_count") == 2
    assert value(after, "memgrid_model_call_duration_seconds_count") == 2
    assert value(after, "memgrid_workers") == 1
    assert value(after, "memgrid_dead_letters") == 0
    assert value(api_side, "memgrid_workers") == 0  # this API runs no worker
    assert b"Traceback" not in seen, seen.decode(errors="replace")


async def _scrape_until(http: httpx.AsyncClient, url: str, name: str, wanted: float) -> Samples:
    """Scrape until ``name`` reaches ``wanted``: the worker counts a run just after its final
    commit, which the API may report to us first (another process)."""
    with anyio.fail_after(10):
        while True:
            samples = await scrape(http, url)
            if value(samples, name) >= wanted:
                return samples
            await anyio.sleep(0.02)


def _env() -> dict[str, str]:
    """This environment (PYTHONPATH included) without memgrid's or the model's settings."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("MEMGRID_", "OPENAI_"))}


async def test_a_taken_metrics_port_is_refused_by_name(redis_url: str) -> None:
    with socket.socket() as taken, anyio.fail_after(60):
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = await anyio.run_process(
            [sys.executable, "-m", "orchestrator.cli", "worker", "--metrics-port", str(port)],
            env=_env() | {"MEMGRID_REDIS_URL": redis_url},
            check=False,
        )
    assert done.returncode == 2
    assert b"cannot serve metrics on 127.0.0.1:" in done.stderr, done.stderr
    assert b"pick another --metrics-port" in done.stderr
    assert b"Traceback" not in done.stderr


async def test_under_up_a_taken_metrics_port_falls_back_to_a_free_one(redis_url: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        argv = [sys.executable, "-m", "orchestrator.cli", "worker"]
        argv += ["--metrics-port", str(port), "--metrics-fallback"]
        seen = bytearray()
        env = _env() | {"MEMGRID_REDIS_URL": redis_url, "MEMGRID_LOG_LEVEL": "WARNING"}
        async with (
            await anyio.open_process(
                argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL
            ) as worker,
            httpx.AsyncClient(timeout=30) as http,
        ):
            try:
                metrics_url = await _metrics_url(worker, seen)
                samples = await scrape(http, metrics_url)
            finally:
                worker.terminate()
                with anyio.fail_after(30):
                    await worker.wait()
    assert f":{port}/" not in metrics_url
    assert "memgrid_runs_total" in names(samples)


@pytest.mark.parametrize(
    ("args", "env", "said"),
    [
        (["--metrics-port", "70000"], {}, b"--metrics-port must be between 0"),
        ([], {"MEMGRID_METRICS_PORT": "lots"}, b"MEMGRID_METRICS_PORT='lots' is not a port"),
    ],
)
async def test_a_bad_metrics_port_is_refused_by_name(
    args: list[str], env: dict[str, str], said: bytes
) -> None:
    with anyio.fail_after(60):
        done = await anyio.run_process(
            [sys.executable, "-m", "orchestrator.cli", "worker", *args],
            env=_env() | env,
            check=False,
        )
    assert done.returncode == 2
    assert said in done.stderr, done.stderr
    assert b"Traceback" not in done.stderr
