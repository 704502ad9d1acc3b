"""Archive records and their attachments in real Redis."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from storage import keys
from storage.archives import ArchiveStore, new_archive
from storage.errors import InvalidRecord, NotFound


@pytest.fixture
def archives(redis_client: aioredis.Redis) -> ArchiveStore:
    return ArchiveStore(redis_client)


async def test_create_get_list_update(archives: ArchiveStore) -> None:
    first = await archives.create(new_archive("handbook", "hashing/64", metadata={"k": 1}))
    second = await archives.create(new_archive("handbook", "hashing/64", description="again"))
    assert first.id.startswith("archive-")
    assert await archives.get(first.id) == first
    assert [a.id for a in await archives.list()] == [first.id, second.id]
    renamed = await archives.update(first.id, name="manual", description="v2")
    assert (renamed.name, renamed.description, renamed.embedding) == ("manual", "v2", "hashing/64")
    assert await archives.get(first.id) == renamed
    with pytest.raises(InvalidRecord, match="cannot set archive fields"):
        await archives.update(first.id, embedding="hashing/8")
    with pytest.raises(InvalidRecord, match="non-empty name"):
        await archives.update(first.id, name=" ")
    with pytest.raises(InvalidRecord, match="embedding"):
        await archives.create(new_archive("x", ""))
    with pytest.raises(NotFound, match="no archive with id 'archive-missing'"):
        await archives.get("archive-missing")


async def test_keys_carry_the_archive_id_as_hash_tag(archives: ArchiveStore) -> None:
    archive = new_archive("a", "hashing/64")
    assert keys.archive(archive.id).count("{" + archive.id + "}") == 1
    assert keys.archive_agents(archive.id).count("{" + archive.id + "}") == 1
    assert "{agent-1}" in keys.agent_archives("agent-1")


async def test_attach_detach_and_delete(archives: ArchiveStore) -> None:
    archive = await archives.create(new_archive("shared", "hashing/64"))
    other = await archives.create(new_archive("other", "hashing/64"))
    assert await archives.attach(archive.id, "agent-1") is True
    assert await archives.attach(archive.id, "agent-1") is False
    await archives.attach(archive.id, "agent-2")
    await archives.attach(other.id, "agent-1")
    assert await archives.agents_of(archive.id) == ["agent-1", "agent-2"]
    assert [a.id for a in await archives.archives_of("agent-1")] == [archive.id, other.id]
    assert await archives.detach(archive.id, "agent-2") is True
    assert await archives.detach(archive.id, "agent-2") is False
    with pytest.raises(NotFound):
        await archives.attach("archive-missing", "agent-1")
    # Deleting an archive detaches it everywhere; deleting an agent keeps its archives.
    assert await archives.delete(archive.id) == ["agent-1"]
    assert await archives.ids_of("agent-1") == [other.id]
    assert [a.id for a in await archives.list()] == [other.id]
    await archives.forget_agent("agent-1")
    assert await archives.agents_of(other.id) == []
    assert await archives.get(other.id) == other
