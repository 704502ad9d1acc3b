"""Archives in Redis: named stores of passages that several agents attach (``/v1/archives``).

An :class:`~storage.records.Archive` names its embedding; its passages are owned by its id in
the passage store, and the caller writes and drops them (``archival.delete_owner(archive.id)``):
records here never touch passages. Which agents an archive is attached to is kept on both
sides, like sources: the archive's set of agents (``{<archive_id>}``) and the agent's set of
archives (``{<agent_id>}``), so that a step reads its agent's archives from its own slot.
Every key of an archive carries its id as hash tag; the global index ``mg:archives`` is a set
of ids, like the agent and source indexes. Names need not be unique (Letta's are not).
"""

from __future__ import annotations

import builtins
from typing import Any

import msgspec
import redis.asyncio as aioredis

from storage import keys
from storage._util import texts
from storage.errors import Conflict, InvalidRecord, NotFound
from storage.records import Archive, decode, encode, new_id, now

__all__ = ("ArchiveStore", "new_archive")

_FIELDS = frozenset({"name", "description", "metadata"})


def new_archive(
    name: str, embedding: str, *, description: str = "", metadata: dict[str, Any] | None = None
) -> Archive:
    """A new archive record with a fresh ``archive-<uuid>`` id."""
    return Archive(
        id=new_id("archive"),
        name=name,
        embedding=embedding,
        description=description,
        metadata=dict(metadata or {}),
    )


def _validate(archive: Archive) -> None:
    if not archive.name.strip():
        raise InvalidRecord("an archive needs a non-empty name, e.g. 'company_handbook'")
    if not archive.embedding.strip():
        raise InvalidRecord(
            f"archive {archive.name!r} needs an embedding handle, e.g. local/all-MiniLM-L6-v2"
        )


class ArchiveStore:
    """Archives and their attachments to agents."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis

    async def create(self, archive: Archive) -> Archive:
        """Store a new archive.

        Raises:
            InvalidRecord: an empty name or embedding.
            Conflict: the id exists.
        """
        _validate(archive)
        if not await self._redis.set(keys.archive(archive.id), encode(archive), nx=True):
            raise Conflict(f"archive {archive.id} already exists")
        await self._redis.sadd(keys.archives_all(), archive.id)
        return archive

    async def get(self, archive_id: str) -> Archive:
        """The archive with this id.

        Raises:
            NotFound: no such archive.
        """
        raw = await self._redis.get(keys.archive(archive_id))
        if raw is None:
            raise NotFound(f"no archive with id {archive_id!r}")
        return decode(Archive, raw)

    async def _many(self, ids: builtins.list[str]) -> builtins.list[Archive]:
        if not ids:
            return []
        # One GET per key: the archives live in different slots of a cluster.
        async with self._redis.pipeline(transaction=False) as pipe:
            for archive_id in sorted(ids):
                pipe.get(keys.archive(archive_id))
            raws = await pipe.execute()
        found = [decode(Archive, raw) for raw in raws if raw is not None]
        return sorted(found, key=lambda a: (a.created_at, a.id))

    async def list(self) -> builtins.list[Archive]:
        """Every archive, oldest first."""
        return await self._many(texts(await self._redis.smembers(keys.archives_all())))

    async def update(self, archive_id: str, **fields: Any) -> Archive:
        """Change ``name``, ``description`` or ``metadata`` (the embedding stays: its passages
        were embedded with it).

        Raises:
            NotFound: no such archive.
            InvalidRecord: an unknown field or an empty name.
        """
        unknown = set(fields) - _FIELDS
        if unknown:
            raise InvalidRecord(f"cannot set archive fields {sorted(unknown)}")
        current = await self.get(archive_id)
        updated = msgspec.structs.replace(current, **fields, updated_at=now())
        _validate(updated)
        await self._redis.set(keys.archive(archive_id), encode(updated), xx=True)
        return updated

    async def delete(self, archive_id: str) -> builtins.list[str]:
        """Delete an archive's record and detach it from every agent; returns those agents'
        ids. The caller drops its passages first.

        Raises:
            NotFound: no such archive.
        """
        await self.get(archive_id)
        await self._redis.srem(keys.archives_all(), archive_id)
        agent_ids = await self.agents_of(archive_id)
        for agent_id in agent_ids:
            await self._redis.srem(keys.agent_archives(agent_id), archive_id)
        await self._redis.delete(keys.archive(archive_id), keys.archive_agents(archive_id))
        return agent_ids

    async def attach(self, archive_id: str, agent_id: str) -> bool:
        """Record that the archive is attached to the agent; ``False`` if it already was.

        Raises:
            NotFound: no such archive.
        """
        await self.get(archive_id)
        added = await self._redis.sadd(keys.archive_agents(archive_id), agent_id)
        await self._redis.sadd(keys.agent_archives(agent_id), archive_id)
        return bool(added)

    async def detach(self, archive_id: str, agent_id: str) -> bool:
        """Forget that the archive is attached to the agent; ``False`` if it was not."""
        removed = await self._redis.srem(keys.archive_agents(archive_id), agent_id)
        removed += await self._redis.srem(keys.agent_archives(agent_id), archive_id)
        return bool(removed)

    async def agents_of(self, archive_id: str) -> builtins.list[str]:
        """Ids of the agents the archive is attached to, sorted."""
        return sorted(texts(await self._redis.smembers(keys.archive_agents(archive_id))))

    async def ids_of(self, agent_id: str) -> builtins.list[str]:
        """Ids of the archives attached to the agent, sorted."""
        return sorted(texts(await self._redis.smembers(keys.agent_archives(agent_id))))

    async def archives_of(self, agent_id: str) -> builtins.list[Archive]:
        """The archives attached to the agent, oldest first."""
        return await self._many(await self.ids_of(agent_id))

    async def forget_agent(self, agent_id: str) -> None:
        """Drop a deleted agent from every archive it was attached to (archives stay)."""
        for archive_id in await self.ids_of(agent_id):
            await self._redis.srem(keys.archive_agents(archive_id), agent_id)
        await self._redis.delete(keys.agent_archives(agent_id))
