"""Throughput of the scripted model with a zero-latency policy.

Starts ``memgrid scripted-model`` as a subprocess (its own core, as agent workers will see
it) unless ``--in-process``, then measures requests/s from this process: a raw-HTTP baseline
(``GET /v1/models``), raw chat POSTs, and the real openai SDK sequentially and 50-concurrent,
streaming included. Usage: ``python benchmarks/scripted_model.py [--requests N]``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import httpx2
import openai
from _harness import CLI, percentile, start_printing_url, stop, table  # benchmarks/ first

from agents.scripted import ScriptedModel
from agents.tools.registry import AgentTool, base_schemas

_MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant with memory. " * 20},
    {"role": "user", "content": "hello there"},
]
# The send_message entry the step loop sends (with inner thoughts).
_TOOLS = [AgentTool(name="send_message", schema=base_schemas()["send_message"]).openai()]
_CHAT_BODY = json.dumps({"model": "scripted", "messages": _MESSAGES, "tools": _TOOLS}).encode()
_JSON = {"content-type": "application/json"}


async def _measure(
    name: str, total: int, concurrency: int, once: Callable[[], Awaitable[object]]
) -> tuple[str, int, int, float, float, float]:
    latencies: list[float] = []

    async def worker(count: int) -> None:
        for _ in range(count):
            started = time.perf_counter()
            await once()
            latencies.append(time.perf_counter() - started)

    for _ in range(min(20, total)):  # warm the connection pool
        await once()
    started = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for index in range(concurrency):
            tg.start_soon(worker, total // concurrency + (index < total % concurrency))
    elapsed = time.perf_counter() - started
    p50 = percentile(latencies, 50) * 1000
    p99 = percentile(latencies, 99) * 1000
    return name, concurrency, total, total / elapsed, p50, p99


async def _run(base_url: str, total: int) -> list[tuple[str, int, int, float, float, float]]:
    rows = []
    limits = httpx2.Limits(max_connections=100, max_keepalive_connections=100)
    async with (
        httpx2.AsyncClient(base_url=base_url, limits=limits) as raw,
        openai.AsyncOpenAI(base_url=base_url, api_key="x", max_retries=0) as sdk,
    ):

        async def models() -> object:
            return (await raw.get("/models")).raise_for_status()

        async def raw_chat() -> object:
            response = await raw.post("/chat/completions", content=_CHAT_BODY, headers=_JSON)
            return response.raise_for_status()

        async def sdk_chat() -> object:
            return await sdk.chat.completions.create(
                model="scripted",
                messages=_MESSAGES,  # type: ignore[arg-type]
                tools=_TOOLS,  # type: ignore[arg-type]
            )

        async def sdk_stream() -> object:
            stream = await sdk.chat.completions.create(
                model="scripted",
                messages=_MESSAGES,  # type: ignore[arg-type]
                tools=_TOOLS,  # type: ignore[arg-type]
                stream=True,
                stream_options={"include_usage": True},
            )
            return [chunk async for chunk in stream]

        for name, once in [
            ("baseline: raw GET /v1/models", models),
            ("raw POST /v1/chat/completions", raw_chat),
            ("openai SDK chat (tool call)", sdk_chat),
            ("openai SDK chat, stream=true", sdk_stream),
        ]:
            for concurrency in (1, 50):
                rows.append(await _measure(name, total, concurrency, once))
    return rows


def _print(rows: list[tuple[str, int, int, float, float, float]], where: str) -> None:
    print(f"scripted model ({where}), zero-latency echo policy")
    table(
        ["case", "concurrency", "requests", "req/s", "p50 ms", "p99 ms"],
        ([n, c, t, f"{rate:.0f}", f"{p50:.2f}", f"{p99:.2f}"] for n, c, t, rate, p50, p99 in rows),
    )


async def _in_process(total: int) -> None:
    async with ScriptedModel.serve() as model:
        _print(await _run(model.base_url, total), "in this process, one event loop")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=2000, help="requests per row")
    parser.add_argument("--in-process", action="store_true", help="serve from this process")
    args = parser.parse_args()
    if args.in_process:
        anyio.run(_in_process, args.requests)
        return
    with tempfile.TemporaryDirectory(prefix="memgrid-model-") as folder:
        cmd = [*CLI, "scripted-model", "--port", "0"]
        server, base_url = start_printing_url(cmd, Path(folder) / "model.log")
        try:
            rows = anyio.run(_run, base_url, args.requests)
        finally:
            stop(server)
    _print(rows, "subprocess via `memgrid scripted-model`")


if __name__ == "__main__":
    main()
