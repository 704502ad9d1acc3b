"""Archival memory across processes when the passage engine is embedded.

The embedded Qdrant engine opens in one process only. That process (a worker, ``memgrid up``
or ``memgrid serve``) runs :class:`ArchivalServer`, which answers requests from a Redis stream;
every other process uses :class:`RemoteArchival`, which implements the same
:class:`agents.tools.base.Archival` protocol by sending requests there and waiting for the
reply on a list (BLPOP). Redis carries it, so it works across machines too. With
``MEMGRID_QDRANT_URL`` set, every process talks to Qdrant directly and none of this runs.

Besides the protocol, :class:`RemoteArchival` lists, deletes and bulk-inserts passages (what
the REST API and document ingestion need). The passage store's own errors
(:class:`~storage.passages.PassageNotFoundError`, :class:`~storage.passages.PassageDimensionError`)
and the embedders' (:class:`~storage.embeddings.EmbeddingEndpointError`,
:class:`~storage.embeddings.EmbeddingNotConfigured`,
:class:`~storage.embeddings.UnknownEmbeddingHandle`) come back as themselves; any other failure
of the owner arrives as ``RuntimeError``.
"""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Sequence
from typing import Any, Unpack

import anyio
import msgspec
import redis.asyncio as aioredis
import structlog
from redis.exceptions import RedisError

from agents.archival import PassageArchival
from agents.tools.base import Archival, NewPassages, ScoredText, SearchOptions
from bus import keys, streams
from bus.connection import Outage, is_transient
from storage.embeddings import (
    EmbeddingEndpointError,
    EmbeddingNotConfigured,
    UnknownEmbeddingHandle,
)
from storage.errors import RuntimeFailure
from storage.passages import PassageDimensionError, PassageNotFoundError
from storage.records import Passage

__all__ = ("ArchivalServer", "ArchivalUnavailable", "RemoteArchival")

log = structlog.get_logger("memgrid.archival_rpc")
_REPLY_TTL_S = 120
_REQUESTS_MAXLEN = 100_000


class ArchivalUnavailable(RuntimeFailure):
    """No process answered for the embedded passage engine in time."""


class _Request(msgspec.Struct, kw_only=True):
    id: str
    op: str
    args: dict[str, Any]


class _Reply(msgspec.Struct, kw_only=True):
    ok: bool
    result: Any = None
    error: str | None = None
    error_type: str | None = None


# Errors that cross the wire as themselves, so that callers can tell them apart.
_KNOWN_ERRORS: dict[str, type[Exception]] = {
    "PassageNotFoundError": PassageNotFoundError,
    "PassageDimensionError": PassageDimensionError,
    # An embedding endpoint's failure names the endpoint and what to set: the API answers
    # it as a 502, never as the 500 of an unknown RuntimeError.
    "EmbeddingEndpointError": EmbeddingEndpointError,
    "EmbeddingNotConfigured": EmbeddingNotConfigured,
    "UnknownEmbeddingHandle": UnknownEmbeddingHandle,
}


_reply_decoder = msgspec.json.Decoder(_Reply)
_request_decoder = msgspec.json.Decoder(_Request)


class RemoteArchival(Archival):
    """Archival memory served by the process that owns the embedded engine."""

    def __init__(
        self, redis: aioredis.Redis, *, timeout_s: float = 30.0, stats_ttl_s: float = 5.0
    ) -> None:
        self._redis = redis
        self._timeout_s = timeout_s
        # count and tags are shown at every step: cached briefly, dropped on our own writes.
        self._stats_ttl_s = stats_ttl_s
        self._stats: dict[str, tuple[float, int, list[str]]] = {}

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
            known = _KNOWN_ERRORS.get(reply.error_type or "")
            if known is not None:
                raise known(reply.error or reply.error_type)
            raise RuntimeError(reply.error or "archival request failed")
        return reply.result

    async def search(
        self, owner_id: str, embedding: str, query: str, **options: Unpack[SearchOptions]
    ) -> list[ScoredText]:
        options["archive_ids"] = list(options.get("archive_ids", ()))
        result = await self._call(
            "search", owner_id=owner_id, embedding=embedding, query=query, **options
        )
        return msgspec.convert(result, list[ScoredText])

    async def _owner_stats(self, owner_id: str) -> tuple[int, list[str]]:
        now = anyio.current_time()
        cached = self._stats.get(owner_id)
        if cached is not None and now - cached[0] < self._stats_ttl_s:
            return cached[1], cached[2]
        count = int(await self._call("count", owner_id=owner_id))
        tags = list(await self._call("tags", owner_id=owner_id)) if count else []
        self._stats[owner_id] = (now, count, tags)
        return count, tags

    async def count(self, owner_id: str) -> int:
        return (await self._owner_stats(owner_id))[0]

    async def tags(self, owner_id: str) -> list[str]:
        return list((await self._owner_stats(owner_id))[1])

    async def add_passages(
        self, owner_id: str, embedding: str, batch: NewPassages
    ) -> list[Passage]:
        self._stats.pop(owner_id, None)
        fields = msgspec.structs.asdict(batch)  # the server's insert_many takes them as they are
        result = await self._call("insert_many", owner_id=owner_id, embedding=embedding, **fields)
        return msgspec.convert(result, list[Passage])

    async def list(
        self,
        owner_id: str | Sequence[str],
        *,
        limit: int = 50,
        after: str | None = None,
        ascending: bool = True,
    ) -> builtins.list[Passage]:
        """A page of ``owner_id``'s passages (or several owners' as one list) in creation
        order, after the passage ``after``.

        Raises:
            PassageNotFoundError: ``after`` is not a passage of ``owner_id``.
        """
        result = await self._call(
            "list",
            owner_id=owner_id if isinstance(owner_id, str) else list(owner_id),
            limit=limit,
            after=after,
            ascending=ascending,
        )
        return msgspec.convert(result, builtins.list[Passage])

    async def delete(self, owner_id: str, passage_ids: builtins.list[str]) -> int:
        """Delete passages of ``owner_id``; returns how many there were."""
        return int(await self._call("delete", owner_id=owner_id, passage_ids=passage_ids))

    async def delete_owner(self, owner_id: str) -> int:
        """Delete every passage of ``owner_id``; returns how many there were."""
        return int(await self._call("delete_owner", owner_id=owner_id))

    async def aclose(self) -> None:
        return None


class ArchivalServer:
    """Answers :class:`RemoteArchival` requests from the process that owns the engine."""

    def __init__(self, archival: PassageArchival, redis: aioredis.Redis, consumer: str) -> None:
        self._archival = archival
        self._redis = redis
        self._consumer = consumer

    async def serve(self, *, concurrency: int = 8) -> None:
        """Answer requests until cancelled; a Redis outage is waited out, never fatal (this
        runs in the root task group of ``memgrid up`` and of every process owning the engine)."""
        stream = keys.archival_requests()
        outage = Outage("archival server")
        limiter = anyio.Semaphore(concurrency)
        grouped = False
        async with anyio.create_task_group() as tg:
            while True:
                try:
                    if not grouped:
                        await streams.ensure_group(self._redis, stream)
                        grouped = True
                    # A previous owner may have died with requests in flight, or our own
                    # answers failed in an outage: take them over.
                    batch = await streams.claim_stale(
                        self._redis, stream, self._consumer, min_idle_ms=5000, count=32
                    )
                    batch += await streams.read_group(
                        self._redis, stream, self._consumer, count=32, block_ms=1000
                    )
                except RedisError as exc:
                    if is_transient(exc):
                        await outage.wait(exc)
                    elif "NOGROUP" in str(exc):
                        grouped = False  # a Redis that came back without its data
                    else:
                        raise
                    continue
                outage.ok()
                for entry_id, fields in batch:
                    await limiter.acquire()
                    tg.start_soon(self._answer, entry_id, fields.get(b"r", b""), limiter)

    async def _answer(self, entry_id: str, raw: bytes, limiter: anyio.Semaphore) -> None:
        try:
            await self._answer_one(entry_id, raw)
        except RedisError as exc:
            if not is_transient(exc):
                raise
            # The request stays pending and is answered again once Redis is back (the
            # operations are idempotent: inserts carry their passage ids). The caller's own
            # wait failed with the same outage, and it retries.
            log.info("archival_reply_failed", error=repr(exc))
        finally:
            limiter.release()

    async def _answer_one(self, entry_id: str, raw: bytes) -> None:
        try:
            request = _request_decoder.decode(raw)
        except msgspec.DecodeError:
            await streams.ack_and_delete(self._redis, keys.archival_requests(), entry_id)
            return
        try:
            result = await self._run(request.op, request.args)
            reply = _Reply(ok=True, result=msgspec.to_builtins(result))
        except Exception as exc:
            kind = type(exc).__name__
            if kind in _KNOWN_ERRORS:
                reply = _Reply(ok=False, error=str(exc), error_type=kind)
            else:
                log.warning("archival_request_failed", op=request.op, error=repr(exc))
                reply = _Reply(ok=False, error=f"{kind}: {exc}")
        reply_key = keys.archival_reply(request.id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.rpush(reply_key, msgspec.json.encode(reply))
            pipe.expire(reply_key, _REPLY_TTL_S)
            await pipe.execute()
        await streams.ack_and_delete(self._redis, keys.archival_requests(), entry_id)

    async def _run(self, op: str, args: dict[str, Any]) -> Any:
        archival = self._archival
        if op == "insert":  # sent by the RemoteArchival of earlier versions
            return await archival.insert(
                args["owner_id"],
                args["embedding"],
                args["text"],
                list(args["tags"]),
                passage_id=args.get("passage_id"),
            )
        if op == "search":
            options = msgspec.convert(args, SearchOptions)  # the keys past the first three
            return await archival.search(
                args["owner_id"], args["embedding"], args["query"], **options
            )
        if op == "count":
            return await archival.count(args["owner_id"])
        if op == "tags":
            return await archival.tags(args["owner_id"])
        if op == "insert_many":
            batch = msgspec.convert(args, NewPassages)  # the keys past the first two
            return await archival.add_passages(args["owner_id"], args["embedding"], batch)
        if op == "list":
            return await archival.store.list(
                args["owner_id"],
                limit=int(args["limit"]),
                after=args.get("after"),
                ascending=bool(args.get("ascending", True)),
            )
        if op == "delete":
            return await archival.delete(args["owner_id"], list(args["passage_ids"]))
        if op == "delete_owner":
            return await archival.delete_owner(args["owner_id"])
        raise ValueError(f"unknown archival operation {op!r}")
