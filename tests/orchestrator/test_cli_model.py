"""No model, an unreachable model, and workers with another model: `send` and `run` fail fast
and say what to set, naming the endpoint; running workers' own endpoint is announced.

Real `memgrid` subprocesses on a real Redis; the scripted model over HTTP where one answers.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agents.llm import LLMClient, LLMRejected, LLMSettings, LLMUnavailable
from tests.orchestrator._cli import memgrid

HELLO = [{"role": "user", "content": "hello"}]
WORKFLOW = """\
name: lone
agents:
  - name: lone
    persona: "I answer."
entry: lone
"""


def _closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"  # nobody listens there any more


def _without_model(env: dict[str, str], **extra: str) -> dict[str, str]:
    return {k: v for k, v in env.items() if not k.startswith("OPENAI_")} | extra


@pytest.mark.parametrize(
    "url", [_closed_port_url(), "http://no-such-host.invalid/v1"], ids=["refused", "no-host"]
)
async def test_an_unreachable_endpoint_fails_fast_naming_it(url: str) -> None:
    # With backoff from 4 s, four retries would take ~20 s; nobody listening takes one quick one.
    client = LLMClient(LLMSettings(base_url=url, max_retries=4, backoff_base_s=4.0))
    started = time.monotonic()
    try:
        with pytest.raises(LLMUnavailable, match="cannot reach the model endpoint") as caught:
            await client.chat("openai/any", HELLO)
    finally:
        await client.aclose()
    assert time.monotonic() - started < 3.0
    assert url in str(caught.value) and "OPENAI_BASE_URL" in str(caught.value)


async def test_no_endpoint_at_all_says_what_to_set() -> None:
    client = LLMClient(LLMSettings())
    try:
        with pytest.raises(LLMRejected, match=r"set OPENAI_API_KEY .* or OPENAI_BASE_URL"):
            await client.chat("openai/any", HELLO)
    finally:
        await client.aclose()


def test_send_and_run_without_a_model_say_what_to_set(env: dict[str, str], tmp_path: Path) -> None:
    bare = _without_model(env)
    assert memgrid(bare, "agents", "create", "nomodel").returncode == 0
    sent = memgrid(bare, "send", "nomodel", "hello")
    assert sent.returncode == 1, sent.stdout + sent.stderr
    assert "no model endpoint is configured" in sent.stderr
    assert "OPENAI_API_KEY" in sent.stderr and "OPENAI_BASE_URL" in sent.stderr

    workflow = tmp_path / "lone.yaml"
    workflow.write_text(WORKFLOW)
    ran = memgrid(bare, "run", str(workflow), "--input", "hello")
    assert ran.returncode == 1, ran.stdout + ran.stderr
    assert "no model endpoint is configured" in ran.stdout + ran.stderr


def test_send_to_an_unreachable_endpoint_names_it(env: dict[str, str]) -> None:
    url = _closed_port_url()
    gone = _without_model(env, OPENAI_BASE_URL=url)
    assert memgrid(gone, "agents", "create", "lost").returncode == 0
    sent = memgrid(gone, "send", "lost", "hello", "--json")
    assert sent.returncode == 1
    assert f"cannot reach the model endpoint {url}" in sent.stderr
    assert "Connection error." not in sent.stderr


@pytest.mark.slow
def test_send_through_workers_says_they_use_their_own_model(env: dict[str, str]) -> None:
    assert memgrid(env, "agents", "create", "busy").returncode == 0
    with subprocess.Popen(
        [sys.executable, "-m", "orchestrator.cli", "worker", "--concurrency", "2"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    ) as worker:
        try:
            deadline = time.monotonic() + 30
            while memgrid(env, "worker", "--check").returncode != 0:  # its first health beat
                assert worker.poll() is None and time.monotonic() < deadline
            other = _closed_port_url()
            sent = memgrid(env | {"OPENAI_BASE_URL": other}, "send", "busy", "my name is Al")
            assert sent.returncode == 0, sent.stderr  # the workers' model answered
            assert "running workers answer with their own model settings" in sent.stderr
            assert env["OPENAI_BASE_URL"] in sent.stderr and other in sent.stderr
            same = memgrid(env, "send", "busy", "hello")
            assert same.returncode == 0 and "own model settings" not in same.stderr
        finally:
            os.kill(worker.pid, signal.SIGTERM)
            worker.wait(timeout=30)
