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

from storage import keys
from storage._attachable import SOURCES, AttachableStore
from storage._util import by_id_or_name, fetch, fetch_many, members
from storage.errors import Conflict, InvalidRecord
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


class SourceStore(AttachableStore[Source]):
    """Sources (unique by name) and their files' metadata (get, list and attachments: see
    :class:`AttachableStore`)."""

    _kind = SOURCES
    _example = "employee_handbook"

    # --- sources -------------------------------------------------------------------------

    async def create(self, source: Source) -> Source:
        """Store a new source.

        Raises:
            InvalidRecord: an empty name or embedding.
            Conflict: the name is taken (or the id exists).
        """
        self._validate(source)
        if await self.get_by_name(source.name) is not None:
            raise Conflict(f"a source named {source.name!r} already exists; pick another name")
        return await super().create(source)

    async def get_by_name(self, name: str) -> Source | None:
        """The source named ``name``, or ``None``."""
        return next((s for s in await self.list() if s.name == name), None)

    async def resolve(self, name_or_id: str) -> Source:
        """The source with this id, else with this name.

        Raises:
            NotFound: neither exists.
        """
        missing = f"no source with id or name {name_or_id!r}"
        return await by_id_or_name(name_or_id, self.get, self.get_by_name, missing)

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
        self._validate(updated)
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
        await self._detach_all(source_id)
        return source, files

    # --- attachments (attach, detach, agents_of, forget_agent: see AttachableStore) --------

    async def sources_of(self, agent_id: str) -> builtins.list[Source]:
        """The sources attached to the agent, oldest first."""
        return await self._many(await self._attached_to(agent_id))

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
        return await fetch(
            self._redis, keys.file(file_id), FileMeta, f"no file with id {file_id!r}"
        )

    async def list_files(self, source_id: str) -> builtins.list[FileMeta]:
        """The source's files, oldest first (an unknown source has none)."""
        ids = await members(self._redis, keys.source_files(source_id))
        files = await fetch_many(self._redis, [keys.file(i) for i in ids], FileMeta)
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
