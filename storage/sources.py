"""Sources and their files in Redis: the records behind document upload (``/v1/sources``).

A :class:`~storage.records.Source` is a named collection of uploaded files with the embedding
its chunks use; a :class:`~storage.records.FileMeta` records one upload and how its ingestion
went (``pending`` → ``processing`` → ``completed`` or ``error``). The chunks themselves are
passages owned by the source in the passage store; :mod:`agents.ingest` writes them and
copies them into agents' archival memory. Deleting records here never touches passages: the
caller drops them too (``archival.delete_owner(source.id)``).

Which agents a source is attached to is kept on both sides (the source's set of agents and
the agent's set of sources); :meth:`SourceStore.attach` and :meth:`SourceStore.detach` only
record it, the caller copies or drops the passages.

Source names are unique, checked on create and rename by reading the existing names (there is
no name index yet, so two clients creating the same name at the same instant could both win).
"""

from __future__ import annotations

import builtins
from typing import Any

import msgspec
import redis.asyncio as aioredis

from storage import keys
from storage._util import mget, texts
from storage.errors import Conflict, InvalidRecord, NotFound
from storage.records import FileMeta, Source, decode, encode, new_id

__all__ = ("SourceStore", "new_file", "new_source")

_SOURCE_FIELDS = frozenset({"name", "description", "embedding"})
_FILE_FIELDS = frozenset(
    {
        "status",
        "passages",
        "total_chunks",
        "chunks_embedded",
        "error",
        "file_size",
        "file_type",
        "file_name",
    }
)


def new_source(name: str, embedding: str, *, description: str = "") -> Source:
    """A new source record with a fresh ``source-<uuid>`` id."""
    return Source(id=new_id("source"), name=name, embedding=embedding, description=description)


def new_file(source_id: str, file_name: str, *, file_type: str, file_size: int) -> FileMeta:
    """A new ``pending`` file record with a fresh ``file-<uuid>`` id."""
    return FileMeta(
        id=new_id("file"),
        source_id=source_id,
        file_name=file_name,
        file_type=file_type,
        file_size=file_size,
    )


def _validate(source: Source) -> None:
    if not source.name.strip():
        raise InvalidRecord("a source needs a non-empty name, e.g. 'employee_handbook'")
    if not source.embedding.strip():
        raise InvalidRecord(
            f"source {source.name!r} needs an embedding handle, e.g. local/all-MiniLM-L6-v2"
        )


class SourceStore:
    """Sources (unique by name) and their files' metadata."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis

    # --- sources -------------------------------------------------------------------------

    async def create(self, source: Source) -> Source:
        """Store a new source.

        Raises:
            InvalidRecord: an empty name or embedding.
            Conflict: the name is taken (or the id exists).
        """
        _validate(source)
        if await self.get_by_name(source.name) is not None:
            raise Conflict(f"a source named {source.name!r} already exists; pick another name")
        if not await self._redis.set(keys.source(source.id), encode(source), nx=True):
            raise Conflict(f"source {source.id} already exists")
        await self._redis.sadd(keys.sources_all(), source.id)
        return source

    async def get(self, source_id: str) -> Source:
        """The source with this id.

        Raises:
            NotFound: no such source.
        """
        raw = await self._redis.get(keys.source(source_id))
        if raw is None:
            raise NotFound(f"no source with id {source_id!r}")
        return decode(Source, raw)

    async def get_by_name(self, name: str) -> Source | None:
        """The source named ``name``, or ``None``."""
        return next((s for s in await self.list() if s.name == name), None)

    async def resolve(self, name_or_id: str) -> Source:
        """The source with this id, else with this name.

        Raises:
            NotFound: neither exists.
        """
        raw = await self._redis.get(keys.source(name_or_id))
        if raw is not None:
            return decode(Source, raw)
        found = await self.get_by_name(name_or_id)
        if found is None:
            raise NotFound(f"no source with id or name {name_or_id!r}")
        return found

    async def list(self) -> builtins.list[Source]:
        """Every source, oldest first."""
        ids = sorted(texts(await self._redis.smembers(keys.sources_all())))
        if not ids:
            return []
        raws = await mget(self._redis, [keys.source(i) for i in ids])
        sources = [decode(Source, raw) for raw in raws if raw is not None]
        return sorted(sources, key=lambda s: (s.created_at, s.id))

    async def update(self, source_id: str, **fields: Any) -> Source:
        """Change ``name``, ``description`` or ``embedding`` of a source.

        Changing the embedding does not re-embed passages already stored; callers refuse it
        once files exist.

        Raises:
            NotFound: no such source.
            InvalidRecord: an unknown field or an empty name.
            Conflict: the new name is taken.
        """
        unknown = set(fields) - _SOURCE_FIELDS
        if unknown:
            raise InvalidRecord(f"cannot set source fields {sorted(unknown)}")
        current = await self.get(source_id)
        updated = msgspec.structs.replace(current, **fields)
        _validate(updated)
        if updated.name != current.name:
            taken = await self.get_by_name(updated.name)
            if taken is not None and taken.id != source_id:
                raise Conflict(f"a source named {updated.name!r} already exists")
        await self._redis.set(keys.source(source_id), encode(updated))
        return updated

    async def delete(self, source_id: str) -> tuple[Source, builtins.list[FileMeta]]:
        """Delete a source and its file records; returns them so the caller can drop the
        passages (of the source, and the copies in agents it was attached to).

        Raises:
            NotFound: no such source.
        """
        source = await self.get(source_id)
        files = await self.list_files(source_id)
        # Keys of several hash slots: in order, not in one transaction (a cluster has none
        # across slots). The source record goes last, so a delete cut short is done again.
        async with self._redis.pipeline(transaction=False) as pipe:
            for meta in files:
                pipe.delete(keys.file(meta.id))
            pipe.srem(keys.sources_all(), source_id)
            pipe.delete(keys.source_files(source_id))
            pipe.delete(keys.source(source_id))
            await pipe.execute()
        for agent_id in await self.agents_of(source_id):
            await self._redis.srem(keys.agent_sources(agent_id), source_id)
        await self._redis.delete(keys.source_agents(source_id))
        return source, files

    # --- attachments ---------------------------------------------------------------------

    async def attach(self, source_id: str, agent_id: str) -> bool:
        """Record that the source is attached to the agent; ``False`` if it already was.

        Raises:
            NotFound: no such source.
        """
        await self.get(source_id)
        added = await self._redis.sadd(keys.source_agents(source_id), agent_id)
        await self._redis.sadd(keys.agent_sources(agent_id), source_id)
        return bool(added)

    async def detach(self, source_id: str, agent_id: str) -> bool:
        """Forget that the source is attached to the agent; ``False`` if it was not."""
        removed = await self._redis.srem(keys.source_agents(source_id), agent_id)
        await self._redis.srem(keys.agent_sources(agent_id), source_id)
        return bool(removed)

    async def agents_of(self, source_id: str) -> builtins.list[str]:
        """Ids of the agents the source is attached to, sorted."""
        return sorted(texts(await self._redis.smembers(keys.source_agents(source_id))))

    async def sources_of(self, agent_id: str) -> builtins.list[Source]:
        """The sources attached to the agent, oldest first."""
        ids = sorted(texts(await self._redis.smembers(keys.agent_sources(agent_id))))
        if not ids:
            return []
        raws = await mget(self._redis, [keys.source(i) for i in ids])
        sources = [decode(Source, raw) for raw in raws if raw is not None]
        return sorted(sources, key=lambda s: (s.created_at, s.id))

    async def forget_agent(self, agent_id: str) -> None:
        """Drop a deleted agent from every source it was attached to."""
        ids = texts(await self._redis.smembers(keys.agent_sources(agent_id)))
        for source_id in ids:
            await self._redis.srem(keys.source_agents(source_id), agent_id)
        await self._redis.delete(keys.agent_sources(agent_id))

    # --- files ---------------------------------------------------------------------------

    async def add_file(self, meta: FileMeta) -> FileMeta:
        """Record an upload to an existing source.

        Raises:
            NotFound: the source does not exist.
            Conflict: a file with this id exists.
        """
        await self.get(meta.source_id)
        if not await self._redis.set(keys.file(meta.id), encode(meta), nx=True):
            raise Conflict(f"file {meta.id} already exists")
        await self._redis.sadd(keys.source_files(meta.source_id), meta.id)
        return meta

    async def get_file(self, file_id: str) -> FileMeta:
        """The file record with this id.

        Raises:
            NotFound: no such file.
        """
        raw = await self._redis.get(keys.file(file_id))
        if raw is None:
            raise NotFound(f"no file with id {file_id!r}")
        return decode(FileMeta, raw)

    async def list_files(self, source_id: str) -> builtins.list[FileMeta]:
        """The source's files, oldest first (an unknown source has none)."""
        ids = sorted(texts(await self._redis.smembers(keys.source_files(source_id))))
        if not ids:
            return []
        raws = await mget(self._redis, [keys.file(i) for i in ids])
        files = [decode(FileMeta, raw) for raw in raws if raw is not None]
        return sorted(files, key=lambda f: (f.created_at, f.id))

    async def update_file(self, file_id: str, **fields: Any) -> FileMeta:
        """Change a file's ``status``, ``passages``, progress, ``error`` (or size, type, name).

        Raises:
            NotFound: no such file.
            InvalidRecord: an unknown field or status.
        """
        unknown = set(fields) - _FILE_FIELDS
        if unknown:
            raise InvalidRecord(f"cannot set file fields {sorted(unknown)}")
        current = await self.get_file(file_id)
        try:
            # Round-trip through the decoder so that a bad status is refused here.
            updated = decode(FileMeta, encode(msgspec.structs.replace(current, **fields)))
        except msgspec.ValidationError as exc:
            raise InvalidRecord(f"file {file_id}: {exc}") from None
        await self._redis.set(keys.file(file_id), encode(updated))
        return updated

    async def delete_file(self, file_id: str) -> FileMeta:
        """Delete a file record; the caller drops its passages.

        Raises:
            NotFound: no such file.
        """
        meta = await self.get_file(file_id)
        # Two hash slots: the listing first, then the record (a delete cut short is redone).
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.srem(keys.source_files(meta.source_id), file_id)
            pipe.delete(keys.file(file_id))
            await pipe.execute()
        return meta
