"""Archival memory across processes when the passage engine is embedded.

The embedded Qdrant engine opens in one process only. That process (a worker, ``memgrid up``
or ``memgrid serve``) runs :class:`ArchivalServer`, which answers requests from a Redis stream;
every other process uses :class:`RemoteArchival`, which implements the same
:class:`agents.tools.base.Archival` protocol by sending requests there and waiting for the
reply on a list (BLPOP). Redis carries it, so it works across machines too. With
``MEMGRID_QDRANT_URL`` set, every process talks to Qdrant directly and none of this runs.
"""

from __future__ import annotations

import uuid
from typing import Any

import anyio
import msgspec
import redis.asyncio as aioredis
import structlog

from agents.archival import PassageArchival
from agents.tools.base import ScoredText
from bus import keys, streams
from storage.records import Passage

__all__ = ("ArchivalServer", "ArchivalUnavailable", "RemoteArchival")

log = structlog.get_logger("memgrid.archival_rpc")
_REPLY_TTL_S = 120
_REQUESTS_MAXLEN = 100_000


class ArchivalUnavailable(Exception):
    """No process answered for the embedded passage engine in time."""


class _Request(msgspec.Struct, kw_only=True):
    id: str
    op: str
    args: dict[str, Any]


class _Reply(msgspec.Struct, kw_only=True):
    ok: bool
    result: Any = None
    error: str | None = None


_reply_decoder = msgspec.json.Decoder(_Reply)
_request_decoder = msgspec.json.Decoder(_Request)


class RemoteArchival:
    """Archival memory served by the process that owns the embedded engine."""

    def __init__(self, redis: aioredis.Redis, *, timeout_s: float = 30.0) -> None:
        self._redis = redis
        self._timeout_s = timeout_s

    async def _call(self, op: str, **args: Any) -> Any:
        request = _Request(id=uuid.uuid4().hex, op=op, args=args)
        reply_key = keys.archival_reply(request.id)
        await self._redis.xadd(
            keys.archival_requests(),
            {"r": msgspec.json.encode(request)},
            maxlen=_REQUESTS_MAXLEN,
            approximate=True,
        )
        got = await self._redis.blpop([reply_key], timeout=self._timeout_s)
        if got is None:
            raise ArchivalUnavailable(
                f"no memgrid process answered for archival memory within {self._timeout_s:.0f}s "
                "(the process that owns the embedded Qdrant engine is gone or busy); start a "
                "worker, or set MEMGRID_QDRANT_URL to share a Qdrant server"
            )
        reply = _reply_decoder.decode(got[1])
        if not reply.ok:
            raise RuntimeError(reply.error or "archival request failed")
        return reply.result

    async def insert(
        self,
        owner_id: str,
        embedding: str,
        text: str,
        tags: list[str],
        *,
        passage_id: str | None = None,
    ) -> Passage:
        result = await self._call(
            "insert",
            owner_id=owner_id,
            embedding=embedding,
            text=text,
            tags=tags,
            passage_id=passage_id,
        )
        return msgspec.convert(result, Passage)

    async def search(
        self,
        owner_id: str,
        embedding: str,
        query: str,
        *,
        top_k: int,
        offset: int,
        tags: list[str] | None,
        match_all_tags: bool,
        start: float | None,
        end: float | None,
    ) -> list[ScoredText]:
        result = await self._call(
            "search",
            owner_id=owner_id,
            embedding=embedding,
            query=query,
            top_k=top_k,
            offset=offset,
            tags=tags,
            match_all_tags=match_all_tags,
            start=start,
            end=end,
        )
        return msgspec.convert(result, list[ScoredText])

    async def count(self, owner_id: str) -> int:
        return int(await self._call("count", owner_id=owner_id))

    async def tags(self, owner_id: str) -> list[str]:
        return list(await self._call("tags", owner_id=owner_id))

    async def aclose(self) -> None:
        return None


class ArchivalServer:
    """Answers :class:`RemoteArchival` requests from the process that owns the engine."""

    def __init__(self, archival: PassageArchival, redis: aioredis.Redis, consumer: str) -> None:
        self._archival = archival
        self._redis = redis
        self._consumer = consumer

    async def serve(self, *, concurrency: int = 8) -> None:
        stream = keys.archival_requests()
        await streams.ensure_group(self._redis, stream)
        limiter = anyio.Semaphore(concurrency)
        async with anyio.create_task_group() as tg:
            while True:
                # A previous owner may have died with requests in flight: take them over.
                batch = await streams.claim_stale(
                    self._redis, stream, self._consumer, min_idle_ms=5000, count=32
                )
                batch += await streams.read_group(
                    self._redis, stream, self._consumer, count=32, block_ms=1000
                )
                for entry_id, fields in batch:
                    await limiter.acquire()
                    tg.start_soon(self._answer, entry_id, fields.get(b"r", b""), limiter)

    async def _answer(self, entry_id: str, raw: bytes, limiter: anyio.Semaphore) -> None:
        try:
            try:
                request = _request_decoder.decode(raw)
            except msgspec.DecodeError:
                await streams.ack_and_delete(self._redis, keys.archival_requests(), entry_id)
                return
            try:
                result = await self._run(request.op, request.args)
                reply = _Reply(ok=True, result=msgspec.to_builtins(result))
            except Exception as exc:
                log.warning("archival_request_failed", op=request.op, error=repr(exc))
                reply = _Reply(ok=False, error=f"{type(exc).__name__}: {exc}")
            reply_key = keys.archival_reply(request.id)
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.rpush(reply_key, msgspec.json.encode(reply))
                pipe.expire(reply_key, _REPLY_TTL_S)
                await pipe.execute()
            await streams.ack_and_delete(self._redis, keys.archival_requests(), entry_id)
        finally:
            limiter.release()

    async def _run(self, op: str, args: dict[str, Any]) -> Any:
        archival = self._archival
        if op == "insert":
            return await archival.insert(
                args["owner_id"],
                args["embedding"],
                args["text"],
                list(args["tags"]),
                passage_id=args.get("passage_id"),
            )
        if op == "search":
            return await archival.search(
                args["owner_id"],
                args["embedding"],
                args["query"],
                top_k=int(args["top_k"]),
                offset=int(args["offset"]),
                tags=args.get("tags"),
                match_all_tags=bool(args.get("match_all_tags")),
                start=args.get("start"),
                end=args.get("end"),
            )
        if op == "count":
            return await archival.count(args["owner_id"])
        if op == "tags":
            return await archival.tags(args["owner_id"])
        raise ValueError(f"unknown archival operation {op!r}")
