"""Helpers shared by tests of several packages (fixtures live in the conftest files)."""

from __future__ import annotations

import ast
import json
import os
import shutil
import signal
import socketserver
import subprocess
import sys
import tempfile
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, Literal

import anyio
import anyio.from_thread
import pytest
import redis.asyncio as aioredis

from agents.gate import ToolGate
from agents.letta_messages import Event, ToolReturnMessage
from agents.llm import LLMSettings
from agents.loop import TurnResult, run_turn
from agents.manage import AgentSpec, create_agent
from agents.model import ModelPool
from agents.runs import RunStore, Submitted
from agents.runtime import LLMPool, Runtime
from agents.scripted import ChatRequest, Outcome, ScriptedModel, call, say, tool_call, tool_calls
from agents.worker import Worker, WorkerSettings
from bus.envelopes import InboxMessage
from storage.records import Agent

__all__ = (
    "SEND_MESSAGE_TOOL",
    "agent_with_message",
    "approval_policy",
    "approval_steps",
    "archival_policy",
    "background",
    "burst",
    "clean_env",
    "http_pool",
    "loaded_by",
    "memgrid",
    "model_env",
    "owning_archival",
    "readable_folder",
    "scripted_runtime",
    "serving",
    "tool_returns",
    "turn",
    "turn_result",
)

# The send_message tool as a client would declare it to a chat completions endpoint.
SEND_MESSAGE_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "send_message",
        "description": "Send a message to the user.",
        "parameters": {
            "type": "object",
            "properties": {"message": {"type": "string"}},
            "required": ["message"],
        },
    },
}


def http_pool(model: ScriptedModel) -> LLMPool:
    """The models of a runtime that reaches ``model`` over HTTP through the ``openai`` SDK,
    with short timeouts and backoff (two retries)."""
    settings = LLMSettings(
        base_url=model.base_url, api_key="test", timeout_s=10, max_retries=2, backoff_base_s=0.01
    )
    return LLMPool(settings)


@asynccontextmanager
async def scripted_runtime(
    redis: aioredis.Redis, model: ScriptedModel | ModelPool, *, gate: ToolGate | None = None
) -> AsyncIterator[Runtime]:
    """A runtime on ``redis`` whose model is ``model``: a served
    :class:`~agents.scripted.ScriptedModel` is reached over HTTP (:func:`http_pool`), any other
    :class:`~agents.model.ModelPool` (the in-process ``FunctionModel``) is used as it is; with
    ``gate`` as its tool gate when given; closed on the way out."""
    llm = http_pool(model) if isinstance(model, ScriptedModel) else model
    rt = Runtime(redis=redis, llm=llm)
    if gate is not None:
        rt.gate = gate
    try:
        yield rt
    finally:
        await rt.aclose()


async def turn(
    rt: Runtime,
    agent: Agent | str,
    content: str,
    *,
    role: Literal["user", "system", "approval"] = "user",
) -> tuple[list[Event], TurnResult]:
    """One turn of ``agent`` in this process (``run_turn``): its events and its result."""
    agent_id = agent if isinstance(agent, str) else agent.id
    result = TurnResult()
    inputs = [InboxMessage(content=content, role=role)]
    events = [e async for e in run_turn(rt, agent_id, inputs, result=result)]
    return events, result


async def turn_result(rt: Runtime, agent: Agent | str, content: str = "hi") -> TurnResult:
    """:func:`turn`, for its result alone."""
    return (await turn(rt, agent, content))[1]


def tool_returns(events: list[Event]) -> list[ToolReturnMessage]:
    """The tool returns among ``events``."""
    return [e for e in events if isinstance(e, ToolReturnMessage)]


async def agent_with_message(
    rt: Runtime, name: str, text: str
) -> tuple[Agent, RunStore, Submitted]:
    """A new agent named ``name`` with ``text`` submitted to its inbox (not run yet)."""
    agent = await create_agent(rt, AgentSpec(name=name))
    runs = RunStore(rt.redis)
    return agent, runs, await runs.submit(agent.id, [InboxMessage(content=text)])


async def burst(
    rt: Runtime,
    *,
    concurrency: int = 2,
    lease_ms: int = 2000,
    timeout_s: float = 30,
    **settings: Any,
) -> Worker:
    """Run a burst worker (it stops once no work is left) within ``timeout_s``; returns it."""
    worker = Worker(
        rt, WorkerSettings(burst=True, concurrency=concurrency, lease_ms=lease_ms, **settings)
    )
    with anyio.fail_after(timeout_s):
        await worker.run()
    return worker


def approval_steps(request: ChatRequest) -> Outcome | None:
    """A model's steps with a tool that needs approval: "remember..." calls
    ``core_memory_append`` ("two things": two such calls in one step); after an approved
    call's heartbeat it says "after approval: <the tool's message>". ``None`` for anything
    else."""
    last = request.last_message
    said = last.text if last is not None else ""
    result = request.last_tool_result
    if '"type": "heartbeat"' in said and result is not None:
        return say(f"after approval: {json.loads(result.content)['message']}")
    if last is not None and last.role == "user" and "two things" in said:
        return tool_calls(
            call("core_memory_append", label="human", content="likes tea"),
            call("core_memory_append", label="human", content="hates coffee"),
            thought="two facts to keep",
        )
    if last is not None and last.role == "user" and "remember" in said:
        return tool_call("core_memory_append", label="human", content="likes tea")
    return None


def approval_policy(request: ChatRequest, *, moved_on: bool = False) -> Outcome:
    """A model for tools that need approval (:func:`approval_steps`). With ``moved_on``, a
    user message that follows a tool result (a denial, say) gets "moved on; the edit said:
    <the tool's message>". Anything else: "ok"."""
    step = approval_steps(request)
    if step is not None:
        return step
    last = request.last_message
    result = request.last_tool_result
    if moved_on and result is not None and last is not None and last.role == "user":
        return say(f"moved on; the edit said: {json.loads(result.content)['message']}")
    return say("ok")


def archival_policy(request: ChatRequest) -> Outcome:
    """A model for archival memory: "remember: X" inserts X, "recall: X" searches for X, a
    tool's result is sent back as the reply; anything else is echoed."""
    if request.last_role == "tool":
        return say(request.messages[-1].text())
    said = request.last_user_text or ""
    if said.startswith("remember: "):
        return tool_call("archival_memory_insert", content=said.removeprefix("remember: "))
    if said.startswith("recall: "):
        return tool_call("archival_memory_search", query=said.removeprefix("recall: "))
    return say(said)


def loaded_by(code: str, modules: tuple[str, ...]) -> list[str]:
    """Those of ``modules`` that a fresh interpreter has imported once it has run ``code``."""
    probe = f"{code}\nimport sys\nprint([m for m in {modules!r} if m in sys.modules])"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    loaded: list[str] = ast.literal_eval(done.stdout)
    return loaded


def memgrid(
    env: dict[str, str],
    *args: str,
    stdin: str | None = None,
    timeout: float = 60,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """``memgrid ARGS`` as a user runs it: a subprocess with ``env`` and no terminal."""
    return subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", *args],
        env=env,
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@contextmanager
def background(
    argv: Sequence[str], *, env: dict[str, str] | None = None, merge_stderr: bool = False
) -> Iterator[subprocess.Popen[str]]:
    """``argv`` running in the background, its stdout (and stderr, merged into it with
    ``merge_stderr``) piped as text. On the way out, if it still runs, it is sent SIGINT (as
    Ctrl-C) and reaped, killed after 30 s."""
    stderr = subprocess.STDOUT if merge_stderr else subprocess.PIPE
    with subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True) as proc:
        try:
            assert proc.stdout is not None
            yield proc
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


# What a user's shell would not have set before configuring memgrid.
_CONFIGURED = (
    "MEMGRID_REDIS_URL",
    "MEMGRID_QDRANT_URL",
    "MEMGRID_MODEL",
    "MEMGRID_EMBEDDING",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
)


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    """This environment without memgrid's Redis, Qdrant, model and embedding settings (the
    embedded defaults apply), with ``MEMGRID_HOME=home`` and ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in _CONFIGURED}
    return {**env, "MEMGRID_HOME": str(home), **extra}


def model_env(home: Path, model_url: str, **extra: str) -> dict[str, str]:
    """This environment without any ``MEMGRID_*`` or ``OPENAI_*`` setting, for a memgrid
    process with its home at ``home`` (created), its model served at ``model_url``, hashed
    384-d embeddings and warnings-only logs; with ``extra`` on top."""
    home.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MEMGRID_", "OPENAI_"))}
    return {
        **env,
        "MEMGRID_HOME": str(home),
        "OPENAI_BASE_URL": model_url,
        "OPENAI_API_KEY": "x",
        "MEMGRID_EMBEDDING": "hashing/384",
        "MEMGRID_LOG_LEVEL": "WARNING",
        **extra,
    }


@contextmanager
def owning_archival(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This process owns the embedded passage engine of the memgrid that ``env`` configures
    (its Redis and home) and serves it to that memgrid's workers until the block ends."""
    from orchestrator.bootstrap import open_runtime

    monkeypatch.setenv("MEMGRID_HOME", env["MEMGRID_HOME"])
    owner = open_runtime(redis_url=env["MEMGRID_REDIS_URL"], own_archival=True)
    with (
        anyio.from_thread.start_blocking_portal() as portal,
        portal.wrap_async_context_manager(owner),
    ):
        yield


@contextmanager
def readable_folder(prefix: str) -> Iterator[Path]:
    """A new world-readable folder named ``prefix...`` in the current directory, outside /tmp
    (which the tool sandbox replaces with its own); removed on the way out."""
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=Path.cwd()))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def serving(server: socketserver.BaseServer) -> Iterator[None]:
    """``server`` answering in a thread of its own; shut down and closed on the way out."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
