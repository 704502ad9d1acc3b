"""The baseline a bus cannot beat: raw Redis Streams, one producer and one consumer."""

from __future__ import annotations

import time

import anyio
import redis.asyncio as aioredis

from bus import connect

GROUP = "bench"


async def _fresh_stream(client: aioredis.Redis, key: str) -> None:
    await client.delete(key)
    await client.xgroup_create(key, GROUP, id="0", mkstream=True)


async def raw_rate(url: str, count: int, batch: int, payload: bytes) -> tuple[float, list[float]]:
    """``XADD`` → ``XREADGROUP`` → ``XACK`` of ``count`` messages, producer and consumer
    free-running; ``batch`` > 1 pipelines both sides. Seconds in all, ms per message."""
    key = f"bench:raw:{batch}"
    producer, consumer = connect(url), connect(url)
    laps: list[float] = []
    try:
        await _fresh_stream(producer, key)

        async def produce() -> None:
            for start in range(0, count, batch):
                n = min(batch, count - start)
                if batch == 1:
                    await producer.xadd(key, {"e": payload, "t": repr(time.perf_counter())})
                    continue
                async with producer.pipeline(transaction=False) as pipe:
                    for _ in range(n):
                        pipe.xadd(key, {"e": payload, "t": repr(time.perf_counter())})
                    await pipe.execute()

        async def consume() -> None:
            seen = 0
            while seen < count:
                reply = await consumer.xreadgroup(GROUP, "c", {key: ">"}, count=batch, block=1000)
                for _stream, items in reply or []:
                    now = time.perf_counter()
                    ids = []
                    for entry_id, fields in items:
                        laps.append((now - float(fields[b"t"])) * 1000)
                        ids.append(entry_id)
                    seen += len(ids)
                    if batch == 1:
                        await consumer.xack(key, GROUP, *ids)
                    else:
                        async with consumer.pipeline(transaction=False) as pipe:
                            pipe.xack(key, GROUP, *ids)
                            await pipe.execute()

        started = time.perf_counter()
        async with anyio.create_task_group() as tg:
            tg.start_soon(consume)
            tg.start_soon(produce)
        elapsed = time.perf_counter() - started
        await producer.delete(key)
    finally:
        await producer.aclose()
        await consumer.aclose()
    return elapsed, laps


async def raw_latency(url: str, count: int, payload: bytes) -> list[float]:
    """One message in flight: ms from ``XADD`` until the blocked ``XREADGROUP`` returns it."""
    key = "bench:raw:ping"
    producer, consumer = connect(url), connect(url)
    laps: list[float] = []
    try:
        await _fresh_stream(producer, key)
        send, receive = anyio.create_memory_object_stream[float](1)

        async def consume() -> None:
            for _ in range(count):
                reply = await consumer.xreadgroup(GROUP, "c", {key: ">"}, count=1, block=5000)
                now = time.perf_counter()
                for _stream, items in reply:
                    for entry_id, fields in items:
                        await consumer.xack(key, GROUP, entry_id)
                        await send.send(now - float(fields[b"t"]))

        async def produce() -> None:
            for _ in range(count):
                await anyio.sleep(0.0005)  # let the consumer block first
                await producer.xadd(key, {"e": payload, "t": repr(time.perf_counter())})
                laps.append(await receive.receive() * 1000)

        async with anyio.create_task_group() as tg:
            tg.start_soon(consume)
            tg.start_soon(produce)
        await producer.delete(key)
    finally:
        await producer.aclose()
        await consumer.aclose()
    return laps
