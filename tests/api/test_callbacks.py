"""``callback_url`` on async sends: when the run ends, its result is POSTed there.

The receiver is a real HTTP server on loopback (a thread). It can answer the first requests
with a 503 to see the retries, and it records what it got.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import redis.asyncio as aioredis

from bus import keys as bus_keys
from tests._util import serving
from tests.api._letta import LETTA1X, bob, run_client_script
from tests.api.conftest import Served, make_agent


class Receiver:
    """A loopback HTTP server (a thread) that records each POST and answers with scripted
    statuses, the last one repeating."""

    def __init__(self) -> None:
        self.statuses = [200]
        self.bodies: list[dict[str, Any]] = []
        self.expect = 1
        self._got = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver._got:
                    receiver.bodies.append(json.loads(body))
                    index = min(len(receiver.bodies), len(receiver.statuses)) - 1
                    receiver._got.notify_all()
                self.send_response(receiver.statuses[index])
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def _wait(self, timeout: float) -> bool:
        with self._got:
            return self._got.wait_for(lambda: len(self.bodies) >= self.expect, timeout)

    async def wait(self, seconds: float = 20) -> None:
        """Until ``expect`` POSTs came (fails the test after ``seconds``)."""
        assert await anyio.to_thread.run_sync(self._wait, seconds), self.bodies


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    with serving(found.server):
        yield found


async def _send_async(
    client: httpx.AsyncClient, agent_id: str, url: str, **extra: Any
) -> dict[str, Any]:
    body = {"messages": [{"role": "user", "content": "hi"}], "callback_url": url, **extra}
    response = await client.post(f"/v1/agents/{agent_id}/messages/async", json=body)
    assert response.status_code == 200, response.text
    run: dict[str, Any] = response.json()
    assert run["callback_url"] == url
    return run


async def _run(client: httpx.AsyncClient, run_id: str) -> dict[str, Any]:
    response = await client.get(f"/v1/runs/{run_id}")
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


async def _recorded(client: httpx.AsyncClient, run_id: str) -> dict[str, Any]:
    """The run once its callback is recorded (the record follows the POST's answer)."""
    with anyio.fail_after(10):
        while True:
            run = await _run(client, run_id)
            if run["callback_status_code"] is not None or run["callback_error"] is not None:
                return run
            await anyio.sleep(0.05)


async def test_the_result_is_posted_when_the_run_ends(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    agent = await make_agent(client)
    run = await _send_async(client, agent["id"], receiver.url)
    await receiver.wait()
    [body] = receiver.bodies
    assert body["job_id"] == run["id"]
    assert body["status"] == "completed"
    assert body["completed_at"] and "metadata" in body
    assert body["stop_reason"] == "end_turn" and body["agent_id"] == agent["id"]
    recorded = await _recorded(client, run["id"])
    assert recorded["callback_status_code"] == 200
    assert recorded["callback_sent_at"] and recorded["callback_error"] is None


async def test_a_failing_receiver_is_retried_then_recorded(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    receiver.statuses = [503, 503, 200]
    receiver.expect = 3
    agent = await make_agent(client)
    run = await _send_async(client, agent["id"], receiver.url)
    await receiver.wait()
    assert [b["job_id"] for b in receiver.bodies] == [run["id"]] * 3
    recorded = await _recorded(client, run["id"])
    assert recorded["callback_status_code"] == 200


async def test_a_refusal_is_final_and_recorded(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    receiver.statuses = [404]
    agent = await make_agent(client)
    run = await _send_async(client, agent["id"], receiver.url)
    recorded = await _recorded(client, run["id"])
    assert recorded["callback_status_code"] == 404
    assert "404" in recorded["callback_error"]
    assert len(receiver.bodies) == 1  # a 4xx is not retried


async def test_a_retried_request_gets_one_callback(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    agent = await make_agent(client)
    body = {
        "messages": [{"role": "user", "content": "hi", "otid": "otid-callback-1"}],
        "callback_url": receiver.url,
    }
    url = f"/v1/agents/{agent['id']}/messages/async"
    first = (await client.post(url, json=body)).json()
    again = (await client.post(url, json=body)).json()
    assert first["id"] == again["id"]
    await _recorded(client, first["id"])
    # A third, later request for the same run finds the callback done and sends nothing.
    await client.post(url, json=body)
    probe = await _send_async(client, agent["id"], receiver.url)  # a new run: its own callback
    receiver.expect = 2
    await receiver.wait()
    await _recorded(client, probe["id"])
    assert sorted(b["job_id"] for b in receiver.bodies) == sorted([first["id"], probe["id"]])


async def test_deleting_the_agent_leaves_no_callback_record(
    client: httpx.AsyncClient, receiver: Receiver, redis_client: aioredis.Redis
) -> None:
    agent = await make_agent(client)
    run = await _send_async(client, agent["id"], receiver.url)
    await _recorded(client, run["id"])
    assert await redis_client.ttl(bus_keys.run_callback(agent["id"], run["id"])) > 0
    assert (await client.delete(f"/v1/agents/{agent['id']}")).status_code == 200
    assert not await redis_client.exists(bus_keys.run_callback(agent["id"], run["id"]))


async def test_the_sender_outlives_a_redis_that_lost_its_data(
    client: httpx.AsyncClient, receiver: Receiver, redis_client: aioredis.Redis
) -> None:
    agent = await make_agent(client)
    await redis_client.delete(bus_keys.callbacks())  # the stream and its consumer group
    # The sender's next read fails with NOGROUP: it makes the group again and goes on.
    run = await _send_async(client, agent["id"], receiver.url)
    recorded = await _recorded(client, run["id"])
    assert recorded["callback_status_code"] == 200
    assert (await client.get("/v1/health/")).status_code == 200


async def test_a_bad_callback_url_is_422_naming_it(client: httpx.AsyncClient) -> None:
    agent = await make_agent(client)
    for bad in ("not a url", "ftp://example.com/x", "http://"):
        body = {"messages": [{"role": "user", "content": "hi"}], "callback_url": bad}
        response = await client.post(f"/v1/agents/{agent['id']}/messages/async", json=body)
        assert response.status_code == 422, response.text
        assert response.json()["detail"][0]["loc"] == ["body", "callback_url"]


CLIENT_1X = (
    bob(LETTA1X)
    + """
run = client.agents.messages.create_async(agent_id=agent.id, messages=hi, callback_url=sys.argv[2])
assert run.callback_url == sys.argv[2], run
for _ in range(200):
    run = client.runs.retrieve(run.id)
    if run.callback_status_code is not None:
        break
    time.sleep(0.05)
assert run.callback_status_code == 200 and run.callback_sent_at is not None, run
print("OK")
"""
)


async def test_the_1x_client_sends_a_callback_url(
    served: Served, receiver: Receiver, tmp_path: Path
) -> None:
    await run_client_script(LETTA1X, CLIENT_1X, tmp_path, served.url, receiver.url)
    assert len(receiver.bodies) == 1
