"""memgrid's runtime in a benchmark: agents, one-step turns, and patches that look inside
(the request the loop sends, an instant model, Redis round trips by command)."""

from __future__ import annotations

import argparse
import cProfile
import importlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import anyio
import redis.asyncio as aioredis
import structlog

from agents.llm import LLMClient, LLMResponse
from agents.loop import TurnOptions, TurnResult, run_turn
from agents.manage import AgentSpec, create_agent
from agents.runs import live_workers
from agents.runtime import Runtime
from bus.envelopes import InboxMessage
from storage.records import Run, ToolCall

_BENCHMARKS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def quiet_logs() -> None:
    """structlog at WARNING: the loop's start and finish events per turn would cost time."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))


async def create_agents(rt: Runtime, count: int, prefix: str, parallel: int = 32) -> list[str]:
    """``count`` agents on the scripted model, ``parallel`` at a time; their ids in order."""
    ids = [""] * count
    limiter = anyio.Semaphore(parallel)

    async def one(index: int) -> None:
        async with limiter:
            spec = AgentSpec(name=f"{prefix}-{index}", model="openai/scripted")
            ids[index] = (await create_agent(rt, spec)).id

    async with anyio.create_task_group() as tg:
        for index in range(count):
            tg.start_soon(one, index)
    return ids


async def wait_workers(
    client: aioredis.Redis, count: int, procs: Sequence[subprocess.Popen[Any]], where: Path
) -> None:
    """Until ``count`` workers beat; raises when one exits first (its log is in ``where``)."""
    with anyio.fail_after(120):
        while len(await live_workers(client)) < count:
            if any(p.poll() is not None for p in procs):
                raise RuntimeError(f"a worker exited at start; see its log in {where}")
            await anyio.sleep(0.05)


async def one_step_turn(
    rt: Runtime, agent_id: str, text: str, *, run: Run | None = None, steps: int | None = 1
) -> TurnResult:
    """``run_turn`` to its end; raises unless it ended the turn (in ``steps`` steps)."""
    result = TurnResult()
    inputs = [InboxMessage(content=text)]
    async for _ in run_turn(rt, agent_id, inputs, TurnOptions(run=run), result=result):
        pass
    if result.stop_reason != "end_turn" or steps not in (None, result.usage.step_count):
        raise RuntimeError(f"expected a turn ending after {steps} step(s), got {result!r}")
    return result


class CapturedRequest:
    """While :meth:`on`, keeps the last request ``LLMClient.chat`` sent, to replay it."""

    def __init__(self) -> None:
        self.model = ""
        self.messages: list[Any] = []
        self.tools: list[Any] = []

    def sdk_kwargs(self) -> dict[str, Any]:
        """The request as ``chat.completions.create`` keyword arguments."""
        return {
            "model": self.model.split("/", 1)[-1],
            "messages": self.messages,
            "tools": self.tools,
            "tool_choice": "auto",
        }

    @contextmanager
    def on(self) -> Iterator[None]:
        """Patch ``LLMClient.chat`` to record its arguments."""
        original = LLMClient.chat

        async def chat(
            client: LLMClient, model: str, messages: Any, tools: Any = (), **kw: Any
        ) -> Any:
            self.model, self.messages, self.tools = model, list(messages), list(tools)
            return await original(client, model, messages, tools, **kw)

        setattr(LLMClient, "chat", chat)  # noqa: B010
        try:
            yield
        finally:
            setattr(LLMClient, "chat", original)  # noqa: B010


async def _instant_chat(self: LLMClient, *_: Any, **__: Any) -> LLMResponse:
    """What the scripted model's ``say("ok")`` parses to, with no HTTP."""
    call = ToolCall(
        id=f"call_{uuid.uuid4().hex[:24]}", name="send_message", arguments='{"message": "ok"}'
    )
    return LLMResponse(
        content="",
        tool_calls=[call],
        prompt_tokens=1000,
        completion_tokens=10,
        finish_reason="tool_calls",
    )


@contextmanager
def instant_model() -> Iterator[None]:
    """``LLMClient.chat`` answers ``send_message("ok")`` at once: the bus and the loop alone."""
    original = LLMClient.chat
    setattr(LLMClient, "chat", _instant_chat)  # noqa: B010
    try:
        yield
    finally:
        setattr(LLMClient, "chat", original)  # noqa: B010


class RedisCounter:
    """Redis round trips by command while :meth:`on` and ``active``: a pipeline or MULTI is
    one trip, named by its commands; a command on a WATCHing pipeline is named so."""

    def __init__(self) -> None:
        self.active = True
        self.calls: Counter[str] = Counter()
        self.trips = 0
        self.commands = 0

    @contextmanager
    def on(self) -> Iterator[None]:
        """Patch redis-py's asyncio client to count."""
        single = aioredis.Redis.execute_command
        pipe_cls = aioredis.client.Pipeline
        piped, immediate = pipe_cls.execute, pipe_cls.immediate_execute_command

        def count(name: str, commands: int) -> None:
            if self.active:
                self.calls[name] += 1
                self.trips += 1
                self.commands += commands

        async def execute_command(client: Any, *args: Any, **options: Any) -> Any:
            count(str(args[0]).upper(), 1)
            return await single(client, *args, **options)

        async def execute(pipe: Any, raise_on_error: bool = True) -> Any:
            names = Counter(str(c[0][0]).upper() for c in pipe.command_stack)
            kinds = ",".join(f"{k}x{n}" if n > 1 else k for k, n in sorted(names.items()))
            label = "MULTI" if pipe.is_transaction else "PIPELINE"
            count(f"{label}[{kinds}]", len(pipe.command_stack))
            return await piped(pipe, raise_on_error)

        async def immediate_execute_command(pipe: Any, *args: Any, **options: Any) -> Any:
            count(f"{str(args[0]).upper()} (while WATCHing)", 1)  # bus.lease.fenced
            return await immediate(pipe, *args, **options)

        setattr(aioredis.Redis, "execute_command", execute_command)  # noqa: B010
        setattr(pipe_cls, "execute", execute)  # noqa: B010
        setattr(pipe_cls, "immediate_execute_command", immediate_execute_command)  # noqa: B010
        try:
            yield
        finally:
            setattr(aioredis.Redis, "execute_command", single)  # noqa: B010
            setattr(pipe_cls, "execute", piped)  # noqa: B010
            setattr(pipe_cls, "immediate_execute_command", immediate)  # noqa: B010


def memgrid_command(
    *,
    counts: Path | None = None,
    instant: bool = False,
    patches: Sequence[str] = (),
    cprofile: Path | None = None,
    cpu_clock: bool = False,
) -> list[str]:
    """A command running ``memgrid`` with what a benchmark wants inside it; append memgrid's
    arguments (``worker ...``).

    ``counts``: it writes its Redis round trips by command there (JSON) at exit. ``instant``:
    the model answers at once. ``patches``: ``module:function`` of ``benchmarks/`` called
    first. ``cprofile``: SIGUSR1 starts cProfile on the main thread (the event loop), SIGUSR2
    stops it and writes the stats there; ``cpu_clock``: it times the thread's CPU, not the wall
    clock (on shared cores a wall-clock profile charges other processes' time slices to
    whatever was running, syscalls mostly).
    """
    code = f"import sys; sys.path.insert(0, {_BENCHMARKS!r}); import _harness.runtime as r; "
    cmd = [sys.executable, "-c", code + "sys.exit(r.memgrid_with(sys.argv[1:]))"]
    cmd += ["--count", str(counts)] if counts is not None else []
    cmd += ["--instant"] * instant
    cmd += [f"--patch={patch}" for patch in patches]
    cmd += ["--cprofile", str(cprofile)] if cprofile is not None else []
    cmd += ["--cpu-clock"] * cpu_clock
    return [*cmd, "--"]


def memgrid_with(argv: list[str]) -> int:
    """The other side of :func:`memgrid_command`: run memgrid in this process."""
    parser = argparse.ArgumentParser(prog="memgrid_with")
    parser.add_argument("--count", type=Path, default=None)
    parser.add_argument("--instant", action="store_true")
    parser.add_argument("--patch", action="append", default=[])
    parser.add_argument("--cprofile", default=None)
    parser.add_argument("--cpu-clock", action="store_true")
    parser.add_argument("args", nargs=argparse.REMAINDER)
    ns = parser.parse_args(argv)
    for patch in ns.patch:
        module, _, function = patch.partition(":")
        getattr(importlib.import_module(module), function)()
    if ns.cprofile:
        profiler = cProfile.Profile(time.thread_time) if ns.cpu_clock else cProfile.Profile()

        def dump(*_: object) -> None:
            profiler.disable()
            profiler.dump_stats(ns.cprofile)

        signal.signal(signal.SIGUSR1, lambda *_: profiler.enable())
        signal.signal(signal.SIGUSR2, dump)
    from orchestrator.cli import main as cli

    counter = RedisCounter()
    with ExitStack() as patches:
        if ns.count is not None:
            patches.enter_context(counter.on())
        if ns.instant:
            patches.enter_context(instant_model())
        try:
            return cli(ns.args[1:] if ns.args[:1] == ["--"] else ns.args)
        finally:
            if ns.count is not None:
                ns.count.write_text(json.dumps(counter.calls))
