"""The base of the stores of records that agents attach: sources and archives.

Both are records of passages with a name and an embedding, listed in one global set of ids,
and attached to agents on both sides: the record's set of agents (in the record's hash slot)
and the agent's set of records (in the agent's, so that a step reads its agent's attachments
from its own slot). The two sets live in different slots of a cluster, so they are written one
after the other, never in one transaction, and every reader and removal tolerates a pair cut
short halfway. Only records and attachments are kept here: callers write and drop passages.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from typing import Any, ClassVar, Generic, NamedTuple, TypeVar

import redis.asyncio as aioredis

from storage import keys
from storage._util import fetch, fetch_many, members
from storage.errors import Conflict, InvalidRecord
from storage.records import Archive, Source, encode

_R = TypeVar("_R", Source, Archive)


class Kind(NamedTuple, Generic[_R]):
    """One kind of attachable record: its name, type and keys."""

    name: str
    """What the records are called in errors (``"source"``)."""
    record: type[_R]
    key: Callable[[str], str]
    """The key of a record (``keys.source``)."""
    all_key: Callable[[], str]
    """The key of the set of every record's id (``keys.sources_all``)."""
    agents_key: Callable[[str], str]
    """The key of a record's set of agent ids (``keys.source_agents``)."""
    records_key: Callable[[str], str]
    """The key of an agent's set of record ids (``keys.agent_sources``)."""


SOURCES = Kind(
    "source", Source, keys.source, keys.sources_all, keys.source_agents, keys.agent_sources
)
ARCHIVES = Kind(
    "archive", Archive, keys.archive, keys.archives_all, keys.archive_agents, keys.agent_archives
)


class AttachableStore(Generic[_R]):
    """Records of one :class:`Kind` (the class's ``_kind``), and the agents each is attached
    to."""

    _kind: ClassVar[Kind[Any]]
    _example: ClassVar[str]
    """A name to suggest when one is missing."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis

    def _validate(self, record: _R) -> None:
        kind = self._kind.name
        if not record.name.strip():
            article = "an" if kind[0] in "aeiou" else "a"
            raise InvalidRecord(f"{article} {kind} needs a non-empty name, e.g. {self._example!r}")
        if not record.embedding.strip():
            raise InvalidRecord(
                f"{kind} {record.name!r} needs an embedding handle, e.g. local/all-MiniLM-L6-v2"
            )

    async def create(self, record: _R) -> _R:
        """Store a new record.

        Raises:
            InvalidRecord: an empty name or embedding.
            Conflict: the id exists.
        """
        self._validate(record)
        if not await self._redis.set(self._kind.key(record.id), encode(record), nx=True):
            raise Conflict(f"{self._kind.name} {record.id} already exists")
        await self._redis.sadd(self._kind.all_key(), record.id)
        return record

    async def get(self, record_id: str) -> _R:
        """The record with this id.

        Raises:
            NotFound: no such record.
        """
        missing = f"no {self._kind.name} with id {record_id!r}"
        record: _R = await fetch(self._redis, self._kind.key(record_id), self._kind.record, missing)
        return record

    async def list(self) -> builtins.list[_R]:
        """Every record, oldest first."""
        return await self._many(await members(self._redis, self._kind.all_key()))

    async def _many(self, ids: builtins.list[str]) -> builtins.list[_R]:
        """The records with these ids that exist (any slots), oldest first."""
        keys = [self._kind.key(i) for i in ids]
        found: builtins.list[_R] = await fetch_many(self._redis, keys, self._kind.record)
        return sorted(found, key=lambda r: (r.created_at, r.id))

    async def attach(self, record_id: str, agent_id: str) -> bool:
        """Record that the record is attached to the agent; ``False`` if it already was.

        Raises:
            NotFound: no such record.
        """
        await self.get(record_id)
        added = await self._redis.sadd(self._kind.agents_key(record_id), agent_id)
        await self._redis.sadd(self._kind.records_key(agent_id), record_id)
        return bool(added)

    async def detach(self, record_id: str, agent_id: str) -> bool:
        """Forget that the record is attached to the agent; ``False`` if neither side listed
        the other (a half-written attachment, left by a call cut short, counts as one)."""
        removed = await self._redis.srem(self._kind.agents_key(record_id), agent_id)
        removed += await self._redis.srem(self._kind.records_key(agent_id), record_id)
        return bool(removed)

    async def agents_of(self, record_id: str) -> builtins.list[str]:
        """Ids of the agents the record is attached to, sorted."""
        return await members(self._redis, self._kind.agents_key(record_id))

    async def _attached_to(self, agent_id: str) -> builtins.list[str]:
        """Ids of the records attached to the agent, sorted."""
        return await members(self._redis, self._kind.records_key(agent_id))

    async def _detach_all(self, record_id: str) -> builtins.list[str]:
        """Detach a record being deleted from every agent; returns those agents' ids. The
        record's own set goes last, so that a removal cut short is done again."""
        agent_ids = await self.agents_of(record_id)
        for agent_id in agent_ids:
            await self._redis.srem(self._kind.records_key(agent_id), record_id)
        await self._redis.delete(self._kind.agents_key(record_id))
        return agent_ids

    async def forget_agent(self, agent_id: str) -> None:
        """Drop a deleted agent from every record it was attached to (the records stay)."""
        for record_id in await self._attached_to(agent_id):
            await self._redis.srem(self._kind.agents_key(record_id), agent_id)
        await self._redis.delete(self._kind.records_key(agent_id))
