"""Source and file records in real Redis."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from storage.errors import Conflict, InvalidRecord, NotFound
from storage.sources import SourceStore, new_file, new_source


@pytest.fixture
def sources(redis_client: aioredis.Redis) -> SourceStore:
    return SourceStore(redis_client)


async def test_create_get_list_resolve(sources: SourceStore) -> None:
    first = await sources.create(new_source("handbook", "local/all-MiniLM-L6-v2"))
    second = await sources.create(new_source("wiki", "hashing/64", description="the wiki"))
    assert first.id.startswith("source-")
    assert await sources.get(first.id) == first
    assert await sources.get_by_name("wiki") == second
    assert await sources.get_by_name("nope") is None
    assert await sources.resolve("handbook") == first
    assert await sources.resolve(second.id) == second
    assert [s.name for s in await sources.list()] == ["handbook", "wiki"]
    with pytest.raises(NotFound, match="no source with id or name 'nope'"):
        await sources.resolve("nope")
    with pytest.raises(NotFound):
        await sources.get("source-missing")


async def test_names_are_unique_and_required(sources: SourceStore) -> None:
    await sources.create(new_source("handbook", "hashing/64"))
    with pytest.raises(Conflict, match="already exists"):
        await sources.create(new_source("handbook", "hashing/64"))
    with pytest.raises(InvalidRecord, match="non-empty name"):
        await sources.create(new_source("  ", "hashing/64"))
    with pytest.raises(InvalidRecord, match="embedding"):
        await sources.create(new_source("x", ""))


async def test_update(sources: SourceStore) -> None:
    source = await sources.create(new_source("handbook", "hashing/64"))
    await sources.create(new_source("wiki", "hashing/64"))
    renamed = await sources.update(source.id, name="policies", description="HR")
    assert (renamed.name, renamed.description) == ("policies", "HR")
    assert await sources.get_by_name("policies") == renamed
    assert await sources.update(source.id, name="policies") == renamed  # same name is fine
    with pytest.raises(Conflict):
        await sources.update(source.id, name="wiki")
    with pytest.raises(InvalidRecord, match="cannot set source fields"):
        await sources.update(source.id, id="other")
    with pytest.raises(NotFound):
        await sources.update("source-missing", name="x")


async def test_files_lifecycle(sources: SourceStore) -> None:
    source = await sources.create(new_source("handbook", "hashing/64"))
    meta = await sources.add_file(
        new_file(source.id, "handbook.pdf", file_type="application/pdf", file_size=2048)
    )
    assert (meta.status, meta.passages) == ("pending", 0)
    assert await sources.get_file(meta.id) == meta
    done = await sources.update_file(meta.id, status="completed", passages=7)
    assert (done.status, done.passages) == ("completed", 7)
    failed = await sources.update_file(meta.id, status="error", error="boom")
    assert await sources.get_file(meta.id) == failed
    with pytest.raises(InvalidRecord, match="file-"):
        await sources.update_file(meta.id, status="exploded")
    with pytest.raises(InvalidRecord, match="cannot set file fields"):
        await sources.update_file(meta.id, source_id="other")

    other = await sources.add_file(
        new_file(source.id, "b.txt", file_type="text/plain", file_size=1)
    )
    assert [f.id for f in await sources.list_files(source.id)] == [meta.id, other.id]
    assert await sources.delete_file(other.id) == other
    assert [f.id for f in await sources.list_files(source.id)] == [meta.id]
    with pytest.raises(NotFound):
        await sources.get_file(other.id)
    with pytest.raises(NotFound):
        await sources.delete_file(other.id)
    assert await sources.list_files("source-missing") == []


async def test_a_file_needs_its_source(sources: SourceStore) -> None:
    with pytest.raises(NotFound, match="no source"):
        await sources.add_file(
            new_file("source-missing", "a.txt", file_type="text/plain", file_size=1)
        )


async def test_delete_returns_the_files_and_removes_everything(
    sources: SourceStore, redis_client: aioredis.Redis
) -> None:
    source = await sources.create(new_source("handbook", "hashing/64"))
    files = [
        await sources.add_file(new_file(source.id, f"{n}.txt", file_type="text/plain", file_size=1))
        for n in range(3)
    ]
    deleted, gone = await sources.delete(source.id)
    assert deleted == source
    assert sorted(f.id for f in gone) == sorted(f.id for f in files)
    assert await sources.list() == []
    assert await sources.get_by_name("handbook") is None
    assert await redis_client.keys("mg:*") == []  # no record or index left behind
    with pytest.raises(NotFound):
        await sources.delete(source.id)
    await sources.create(new_source("handbook", "hashing/64"))  # the name is free again
