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

from storage import keys
from storage._attachable import ARCHIVES, AttachableStore
from storage.errors import InvalidRecord
from storage.records import Archive, encode, new_id, now

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


class ArchiveStore(AttachableStore[Archive]):
    """Archives and their attachments to agents (create, get, list and attachments: see
    :class:`AttachableStore`)."""

    _kind = ARCHIVES
    _example = "company_handbook"

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
        self._validate(updated)
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
        agent_ids = await self._detach_all(archive_id)
        await self._redis.delete(keys.archive(archive_id))
        return agent_ids

    # --- attachments (attach, detach, agents_of, forget_agent: see AttachableStore) --------

    async def ids_of(self, agent_id: str) -> builtins.list[str]:
        """Ids of the archives attached to the agent, sorted."""
        return await self._attached_to(agent_id)

    async def archives_of(self, agent_id: str) -> builtins.list[Archive]:
        """The archives attached to the agent, oldest first."""
        return await self._many(await self.ids_of(agent_id))
