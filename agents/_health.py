"""The worker's health beat: a key with a TTL and its counters, for ``memgrid worker --check``
and the dashboard (see :mod:`agents.worker`)."""

from __future__ import annotations

import os
import socket
from typing import TYPE_CHECKING

import anyio
import msgspec

from agents import metrics
from agents.sandbox import limit_violations
from bus import keys as bus_keys
from bus.connection import TRANSIENT_ERRORS, Outage

if TYPE_CHECKING:
    from agents.worker import Worker

__all__ = ("beat",)


async def beat(worker: Worker) -> None:
    """Write the worker's health record every third of its TTL, until cancelled."""
    redis, settings = worker.rt.redis, worker.settings
    outage = Outage(f"worker {worker.id} health")
    while True:
        state = {
            "worker_id": worker.id,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started_at": worker.started_at,
            "busy": worker.busy,
            "slots": settings.concurrency,  # the dashboard shows busy of slots
            "stopping": worker.stopping,
            **worker.counters,
            "sandbox_limits": limit_violations(),  # tool calls stopped by each limit
            # The endpoint it calls for agents that name none: a client submitting through
            # this worker can tell that its own OPENAI_BASE_URL is not the one used.
            "model_endpoint": worker.rt.llm.endpoint,
        }
        try:
            await redis.set(
                bus_keys.worker_health(worker.id),
                msgspec.json.encode(state),
                ex=settings.health_ttl_s,
            )
            await redis.sadd(bus_keys.workers(), worker.id)
            if metrics.enabled():  # inbox lag, sampled at each beat
                await metrics.try_sample_ready(redis)
        except TRANSIENT_ERRORS as exc:  # beat again as soon as Redis is back
            await outage.wait(exc)
            continue
        outage.ok()
        await anyio.sleep(max(1.0, settings.health_ttl_s / 3))
