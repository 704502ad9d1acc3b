"""``callback_url`` of async sends: when the run ends, POST its result there.

Letta's payload: ``{"job_id", "status", "completed_at", "metadata"}`` (memgrid adds
``agent_id`` and ``stop_reason``). The run records ``callback_sent_at``,
``callback_status_code`` and ``callback_error``.

Who sends: the API processes, never the workers, so that a slow or dead receiver never holds
a worker slot. ``POST .../messages/async`` writes the run's callback record (its URL) and adds
an entry to the ``mg:callbacks`` stream; every API process reads that stream in one consumer
group, so each entry is worked by one process at a time. The sender waits for the run's end on
its event stream, POSTs with retries (backoff doubling from ``callback_backoff_s``; a 5xx, a
429 or no answer is retried, another status is final), records the outcome, then acknowledges
the entry. While it waits it keeps claiming its entries (their idle time stays low); an entry
of a process that died goes idle and another process claims it (``XAUTOCLAIM``) and goes on.
A callback recorded as done is never sent again (a client's retried request, a reclaimed
entry), so the receiver sees one POST per run unless a process dies between the POST and its
record: delivery is at-least-once, as for any effect outside memgrid.
"""

from __future__ import annotations

import contextlib
import os
import socket
from typing import Any

import anyio
import httpx
import msgspec
import redis.asyncio as aioredis
import structlog
from anyio.abc import TaskStatus
from redis.exceptions import RedisError, ResponseError

from agents.letta_messages import iso
from bus import keys
from bus.connection import Outage, is_transient
from bus.run_events import follow
from storage.errors import NotFound
from storage.records import Run

__all__ = ("CallbackSender", "CallbackState", "callback_state", "enqueue_callback")

log = structlog.get_logger("memgrid.callbacks")
GROUP = "callbacks"
_FINISHED = frozenset({"completed", "failed", "cancelled"})


class CallbackState(msgspec.Struct, kw_only=True):
    """A run's callback as recorded: the URL, and once done how it went."""

    url: str
    sent_at: float | None = None
    status_code: int | None = None
    error: str | None = None
    done: bool = False


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def callback_state(redis: aioredis.Redis, agent_id: str, run_id: str) -> CallbackState | None:
    """The callback recorded for a run, if it has one."""
    raw = {
        _text(k): _text(v)
        for k, v in (await redis.hgetall(keys.run_callback(agent_id, run_id))).items()
    }
    if "url" not in raw:
        return None
    return CallbackState(
        url=raw["url"],
        sent_at=float(raw["sent_at"]) if raw.get("sent_at") else None,
        status_code=int(raw["status_code"]) if raw.get("status_code") else None,
        error=raw.get("error") or None,
        done=raw.get("done") == "1",
    )


async def enqueue_callback(
    redis: aioredis.Redis, agent_id: str, run_id: str, url: str, *, ttl_s: int
) -> None:
    """Have the run's result POSTed to ``url`` when it ends (once: a run keeps its first URL).

    The record comes first and the stream entry second: a crash between them leaves a run
    the client was never told of (it retries with its ``otid`` and gets here again).
    """
    key = keys.run_callback(agent_id, run_id)
    if await redis.hsetnx(key, "url", url):
        await redis.expire(key, ttl_s)
    elif (await callback_state(redis, agent_id, run_id) or CallbackState(url=url)).done:
        return
    await redis.xadd(keys.callbacks(), {"agent_id": agent_id, "run_id": run_id})


class CallbackSender:
    """Works the ``mg:callbacks`` stream for one API process (see the module docstring)."""

    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        attempts: int = 5,
        backoff_s: float = 0.5,
        timeout_s: float = 10.0,
        claim_idle_ms: int = 30_000,
        concurrency: int = 32,
        ttl_s: int = 30 * 86400,
    ) -> None:
        self.redis = redis
        self.ttl_s = ttl_s  # the record's lifetime, as the run's (MEMGRID_RUN_TTL_S)
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.timeout_s = timeout_s
        self.claim_idle_ms = claim_idle_ms
        self.slots = anyio.Semaphore(concurrency)
        self.consumer = f"{socket.gethostname()}-{os.getpid()}-{os.urandom(2).hex()}"
        self.held: set[str] = set()

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Send callbacks until cancelled; rides out Redis outages (it never ends the API)."""
        outage = Outage("callbacks")
        regroup = True
        async with (
            httpx.AsyncClient(timeout=self.timeout_s) as http,
            anyio.create_task_group() as tg,
        ):
            tg.start_soon(self._keep_claims)
            task_status.started()
            while True:
                found: list[tuple[str, dict[bytes, bytes]]] = []
                try:
                    if regroup:  # at start, and after a Redis that came back without its data
                        await _ensure_group(self.redis)
                        regroup = False
                    found = await self._next()
                    outage.ok()
                except RedisError as exc:
                    if "NOGROUP" in str(exc):
                        regroup = True
                    elif is_transient(exc):
                        await outage.wait(exc)
                    else:  # not Redis being away: say so, and try again later
                        log.exception("callbacks_read_failed")
                        await outage.wait(exc)
                for entry_id, fields in found:
                    await self.slots.acquire()
                    self.held.add(entry_id)
                    tg.start_soon(self._work, http, entry_id, fields)

    async def _next(self) -> list[tuple[str, dict[bytes, bytes]]]:
        stale: Any = await self.redis.xautoclaim(
            keys.callbacks(), GROUP, self.consumer, self.claim_idle_ms, "0-0", count=16
        )
        found = [(_text(i), f) for i, f in stale[1] if f]
        if found:
            return found
        read: Any = await self.redis.xreadgroup(
            GROUP, self.consumer, {keys.callbacks(): ">"}, count=16, block=1000
        )
        return [(_text(i), f) for _stream, items in read or [] for i, f in items]

    async def _keep_claims(self) -> None:
        """Claim the entries this process works on again, so none looks abandoned."""
        while True:
            await anyio.sleep(self.claim_idle_ms / 3000)
            if self.held:
                held: list[Any] = sorted(self.held)
                try:
                    await self.redis.xclaim(
                        keys.callbacks(), GROUP, self.consumer, 0, held, justid=True
                    )
                except RedisError as exc:  # the next round claims them again
                    log.warning("callbacks_claim_failed", error=repr(exc))

    async def _work(
        self, http: httpx.AsyncClient, entry_id: str, fields: dict[bytes, bytes]
    ) -> None:
        try:
            agent_id, run_id = _text(fields[b"agent_id"]), _text(fields[b"run_id"])
            await self._deliver(http, entry_id, agent_id, run_id)
            await self.redis.xack(keys.callbacks(), GROUP, entry_id)
            await self.redis.xdel(keys.callbacks(), entry_id)
        except Exception:  # left pending: another claim retries it
            log.exception("callback_failed", entry_id=entry_id)
        finally:
            self.held.discard(entry_id)
            self.slots.release()

    async def _deliver(
        self, http: httpx.AsyncClient, entry_id: str, agent_id: str, run_id: str
    ) -> None:
        from agents.runs import RunStore

        key = keys.run_callback(agent_id, run_id)
        state = await callback_state(self.redis, agent_id, run_id)
        if state is None or state.done:
            return
        # One entry sends a run's callback: another for the same run (a retried request) is
        # dropped; the owner stays pending until done, so it is reclaimed if its process dies.
        owner = entry_id
        if not await self.redis.hsetnx(key, "entry", entry_id):
            owner = _text(await self.redis.hget(key, "entry"))
        if owner != entry_id:
            return
        runs = RunStore(self.redis)
        try:
            run = await runs.get(agent_id, run_id)
            while run.status not in _FINISHED:
                with contextlib.suppress(TimeoutError):
                    async for _ in follow(self.redis, agent_id, run_id, timeout_s=60):
                        pass
                run = await runs.get(agent_id, run_id)
        except NotFound:  # deleted with its agent, or expired: nothing to report to
            log.info("callback_dropped", agent_id=agent_id, run_id=run_id, why="run is gone")
            return
        payload = _payload(run)
        error = "not sent"
        for attempt in range(self.attempts):
            if attempt:
                await anyio.sleep(self.backoff_s * 2 ** (attempt - 1))
            try:
                response = await http.post(state.url, json=payload)
            except httpx.HTTPError as exc:
                error = f"POST {state.url} failed: {type(exc).__name__}: {exc}"
                continue
            code = response.status_code
            if code >= 500 or code == 429:
                error = f"POST {state.url} answered {code}"
                await self._record(agent_id, run_id, code=code, error=error, done=False)
                continue
            failed = f"POST {state.url} answered {code}" if code >= 400 else None
            await self._record(agent_id, run_id, code=code, error=failed)
            return
        await self._record(agent_id, run_id, error=f"{error} ({self.attempts} attempts)")

    async def _record(
        self,
        agent_id: str,
        run_id: str,
        *,
        code: int | None = None,
        error: str | None = None,
        done: bool = True,
    ) -> None:
        clock = await self.redis.time()
        fields: dict[str, str] = {"sent_at": repr(clock[0] + clock[1] / 1e6), "error": error or ""}
        if code is not None:
            fields["status_code"] = str(code)
        if done:
            fields["done"] = "1"
        key = keys.run_callback(agent_id, run_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping=fields)  # type: ignore[arg-type]  # str values
            pipe.expire(key, self.ttl_s)  # an agent deleted meanwhile: its record still ends
            await pipe.execute()
        log.info("callback_sent", agent_id=agent_id, run_id=run_id, status_code=code, error=error)


async def _ensure_group(redis: aioredis.Redis) -> None:
    try:
        await redis.xgroup_create(keys.callbacks(), GROUP, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def _payload(run: Run) -> dict[str, object]:
    """Letta's callback body, with memgrid's ``agent_id`` and ``stop_reason``."""
    return {
        "job_id": run.id,
        "status": run.status,
        "completed_at": iso(run.completed_at) if run.completed_at is not None else None,
        "metadata": {},
        "agent_id": run.agent_id,
        "stop_reason": run.stop_reason,
    }
