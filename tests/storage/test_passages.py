"""One contract suite for both passage engines: Qdrant Edge (embedded) and qdrant-client
(through its local mode, which has the server's API). Real engines, no mocks; vectors come
from the deterministic hashing embedder, so texts sharing words are near each other."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest

from storage.embeddings import hash_embed
from storage.passages import (
    EdgePassageStore,
    PassageDimensionError,
    PassageNotFoundError,
    PassageStore,
    PassageStoreClosedError,
    PassageStoreLockedError,
    ServerPassageStore,
    open_passage_store,
)
from storage.records import Passage
from storage.settings import StorageSettings

ENGINES = ("edge", "server")
ALICE = "agent-alice"
BOB = "agent-bob"


def _open(engine: str, folder: Path) -> PassageStore:
    if engine == "edge":
        return EdgePassageStore(folder / "qdrant-edge")
    return ServerPassageStore(path=folder / "qdrant-local")


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def store(engine: str, tmp_path: Path) -> AsyncIterator[PassageStore]:
    opened = _open(engine, tmp_path)
    try:
        yield opened
    finally:
        await opened.aclose()


def make(
    owner: str, text: str, *, at: float, tags: Sequence[str] = (), pid: str | None = None
) -> Passage:
    return Passage(
        id=pid or f"passage-{owner}-{at}",
        owner_id=owner,
        text=text,
        tags=list(tags),
        created_at=at,
    )


async def put(store: PassageStore, *passages: Passage, dimension: int = 384) -> None:
    await store.insert(passages, [hash_embed(p.text, dimension) for p in passages])


def texts(passages: Sequence[Passage]) -> list[str]:
    return [p.text for p in passages]


CORPUS = (
    make(ALICE, "the cat sleeps on the warm sofa", at=100.0, tags=["pets", "home"]),
    make(ALICE, "my dog barks at the mail carrier", at=200.0, tags=["pets"]),
    make(ALICE, "quarterly budget review with finance", at=300.0, tags=["work"]),
    make(ALICE, "project deadline moved to friday", at=400.0, tags=["work", "todo"]),
    make(ALICE, "buy cat food and litter", at=500.0, tags=["pets", "todo"]),
)


async def test_store_meets_the_protocol(store: PassageStore) -> None:
    assert isinstance(store, PassageStore)


async def test_insert_then_get_round_trips_every_field(store: PassageStore) -> None:
    original = Passage(
        id="passage-1",
        owner_id=ALICE,
        text="a fact",
        tags=["a", "b"],
        source_id="source-1",
        file_id="file-1",
        created_at=1_700_000_000.123456,
    )
    await put(store, original)
    assert await store.get(ALICE, "passage-1") == original
    assert await store.get(BOB, "passage-1") is None
    assert await store.get(ALICE, "passage-missing") is None


async def test_search_returns_top_k_best_first(store: PassageStore) -> None:
    await put(store, *CORPUS)
    hits = await store.search(ALICE, hash_embed("the cat sleeps on the sofa"), top_k=3)
    assert len(hits) == 3
    assert hits[0].passage == CORPUS[0]
    scores = [hit.score for hit in hits]
    assert scores == sorted(scores, reverse=True)
    assert 0.5 < scores[0] <= 1.0001
    everything = await store.search(ALICE, hash_embed("cat"), top_k=50)
    assert len(everything) == len(CORPUS)
    assert await store.search(ALICE, hash_embed("cat"), top_k=0) == []


async def test_search_offset_pages_through_hits(store: PassageStore) -> None:
    await put(store, *CORPUS)
    # Weighted so that every passage scores differently, in CORPUS order.
    vectors = [hash_embed(p.text) for p in CORPUS]
    query = [sum((5 - n) * v[i] for n, v in enumerate(vectors)) for i in range(384)]
    every = [hit.passage.id for hit in await store.search(ALICE, query, top_k=5)]
    assert every == [p.id for p in CORPUS]
    second = await store.search(ALICE, query, top_k=2, offset=2)
    assert [hit.passage.id for hit in second] == every[2:4]
    assert await store.search(ALICE, query, top_k=2, offset=5) == []


async def test_owners_are_isolated(store: PassageStore) -> None:
    await put(store, *CORPUS)
    await put(store, make(BOB, "the cat sleeps on the warm sofa", at=100.0, tags=["bobs"]))
    hits = await store.search(BOB, hash_embed("cat sofa"), top_k=10)
    assert [hit.passage.owner_id for hit in hits] == [BOB]
    assert await store.count(ALICE) == len(CORPUS)
    assert await store.count(BOB) == 1
    assert await store.count("agent-nobody") == 0
    assert texts(await store.list(BOB)) == ["the cat sleeps on the warm sofa"]
    assert await store.tags(BOB) == ["bobs"]
    assert await store.search("agent-nobody", hash_embed("cat")) == []


async def test_tag_filters_match_any_or_all(store: PassageStore) -> None:
    await put(store, *CORPUS)
    query = hash_embed("anything at all")
    pets_or_work = await store.search(ALICE, query, tags=["pets", "work"], top_k=10)
    assert len(pets_or_work) == 5
    todo = await store.search(ALICE, query, tags=["todo"], top_k=10)
    assert sorted(hit.passage.created_at for hit in todo) == [400.0, 500.0]
    both = await store.search(ALICE, query, tags=["pets", "todo"], match_all_tags=True)
    assert [hit.passage.created_at for hit in both] == [500.0]
    assert await store.search(ALICE, query, tags=["nope"]) == []
    assert len(await store.search(ALICE, query, tags=[], top_k=10)) == 5
    listed = await store.list(ALICE, tags=["pets", "home"], match_all_tags=True)
    assert texts(listed) == ["the cat sleeps on the warm sofa"]


async def test_date_range_filters_are_inclusive(store: PassageStore) -> None:
    await put(store, *CORPUS)
    query = hash_embed("cat")
    within = await store.search(ALICE, query, start=200.0, end=400.0, top_k=10)
    assert sorted(hit.passage.created_at for hit in within) == [200.0, 300.0, 400.0]
    since = await store.search(ALICE, query, start=450.0, top_k=10)
    assert [hit.passage.created_at for hit in since] == [500.0]
    until = await store.search(ALICE, query, end=datetime.fromtimestamp(150, tz=UTC))
    assert [hit.passage.created_at for hit in until] == [100.0]
    naive_utc = datetime(1970, 1, 1, 0, 5)  # 300 s, read as UTC
    at_300 = await store.search(ALICE, query, start=naive_utc, end=naive_utc)
    assert [hit.passage.created_at for hit in at_300] == [300.0]
    mixed = await store.search(ALICE, query, tags=["pets"], start=150.0, top_k=10)
    assert sorted(hit.passage.created_at for hit in mixed) == [200.0, 500.0]


async def test_list_is_in_created_order_with_offset_and_cursor(store: PassageStore) -> None:
    await put(store, *reversed(CORPUS))
    assert texts(await store.list(ALICE)) == texts(CORPUS)
    assert texts(await store.list(ALICE, ascending=False)) == texts(CORPUS)[::-1]
    assert texts(await store.list(ALICE, limit=2, offset=1)) == texts(CORPUS[1:3])
    assert texts(await store.list(ALICE, limit=2, offset=1, ascending=False)) == texts(
        CORPUS[::-1][1:3]
    )
    assert await store.list(ALICE, offset=10) == []
    assert await store.list(ALICE, limit=0) == []
    page = await store.list(ALICE, limit=2, after=CORPUS[1].id)
    assert texts(page) == texts(CORPUS[2:4])
    back = await store.list(ALICE, limit=10, after=CORPUS[3].id, ascending=False)
    assert texts(back) == texts(CORPUS[:3])[::-1]
    assert await store.list(ALICE, after=CORPUS[-1].id) == []
    with pytest.raises(PassageNotFoundError, match="passage-missing"):
        await store.list(ALICE, after="passage-missing")


async def test_list_breaks_created_at_ties_by_id_across_pages(store: PassageStore) -> None:
    tied = [make(ALICE, f"tied {n}", at=50.0, pid=f"passage-{n:02d}") for n in range(12)]
    await put(store, make(ALICE, "first", at=10.0), *reversed(tied), make(ALICE, "last", at=90.0))
    expected = ["first", *(f"tied {n}" for n in range(12)), "last"]
    by_offset: list[str] = []
    for offset in range(0, 14, 4):
        by_offset += texts(await store.list(ALICE, limit=4, offset=offset))
    assert by_offset == expected
    by_cursor: list[Passage] = []
    while True:
        cursor = by_cursor[-1].id if by_cursor else None
        batch = await store.list(ALICE, limit=3, after=cursor)
        if not batch:
            break
        by_cursor += batch
    assert texts(by_cursor) == expected
    newest = await store.list(ALICE, limit=5, after=tied[6].id, ascending=False)
    assert texts(newest) == ["tied 5", "tied 4", "tied 3", "tied 2", "tied 1"]


async def test_delete_removes_only_the_owners_passages(store: PassageStore) -> None:
    await put(store, *CORPUS)
    await put(store, make(BOB, "bob's note", at=1.0, pid="passage-bob"))
    removed = await store.delete(ALICE, [CORPUS[0].id, CORPUS[1].id, CORPUS[1].id, "nope"])
    assert removed == 2
    assert await store.delete(ALICE, ["passage-bob"]) == 0
    assert await store.get(BOB, "passage-bob") is not None
    assert await store.count(ALICE) == 3
    assert await store.get(ALICE, CORPUS[0].id) is None
    hits = await store.search(ALICE, hash_embed("the cat sleeps on the warm sofa"), top_k=10)
    assert CORPUS[0].id not in {hit.passage.id for hit in hits}
    assert await store.delete(ALICE, []) == 0


async def test_delete_owner_clears_one_owner(store: PassageStore) -> None:
    await put(store, *CORPUS)
    await put(store, make(BOB, "bob's note", at=1.0))
    assert await store.delete_owner(ALICE) == len(CORPUS)
    assert await store.count(ALICE) == 0
    assert await store.list(ALICE) == []
    assert await store.tags(ALICE) == []
    assert await store.count(BOB) == 1
    assert await store.delete_owner(ALICE) == 0


async def test_count_and_distinct_tags(store: PassageStore) -> None:
    assert await store.count(ALICE) == 0
    assert await store.tags(ALICE) == []
    await put(store, *CORPUS)
    assert await store.count(ALICE) == 5
    assert await store.tags(ALICE) == ["home", "pets", "todo", "work"]


async def test_reinserting_an_id_overwrites_it(store: PassageStore) -> None:
    await put(store, *CORPUS)
    changed = make(ALICE, "the cat moved to the garden", at=100.0, tags=["garden"])
    assert changed.id == CORPUS[0].id
    await put(store, changed)
    await put(store, changed)
    assert await store.count(ALICE) == len(CORPUS)
    assert await store.get(ALICE, changed.id) == changed
    assert "home" not in await store.tags(ALICE)
    hits = await store.search(ALICE, hash_embed("cat garden"), top_k=1)
    assert hits[0].passage == changed


async def test_passages_persist_across_close_and_reopen(engine: str, tmp_path: Path) -> None:
    first = _open(engine, tmp_path)
    try:
        await put(first, *CORPUS)
        await put(first, make(BOB, "short vectors", at=1.0), dimension=16)
    finally:
        await first.aclose()
    again = _open(engine, tmp_path)
    try:
        assert await again.list(ALICE) == list(CORPUS)
        assert await again.count(BOB) == 1
        hits = await again.search(ALICE, hash_embed("budget review"), top_k=1)
        assert hits[0].passage == CORPUS[2]
        assert (await again.search(BOB, hash_embed("short vectors", 16)))[0].passage.owner_id == BOB
        assert await again.tags(ALICE) == ["home", "pets", "todo", "work"]
    finally:
        await again.aclose()


async def test_dimensions_coexist_but_an_owner_keeps_one(store: PassageStore) -> None:
    await put(store, *CORPUS)
    await put(store, make(BOB, "a small embedder", at=1.0), dimension=64)
    assert [hit.passage.owner_id for hit in await store.search(BOB, hash_embed("small", 64))] == [
        BOB
    ]
    with pytest.raises(PassageDimensionError, match="384-dimensional passages but got a 64"):
        await put(store, make(ALICE, "another embedder", at=9.0), dimension=64)
    with pytest.raises(PassageDimensionError, match="384-dimensional passages but got a 128"):
        await store.search(ALICE, hash_embed("cat", 128))
    with pytest.raises(PassageDimensionError, match="one dimension"):
        await store.insert(
            [make(ALICE, "x", at=1.0), make(ALICE, "y", at=2.0)],
            [hash_embed("x", 384), hash_embed("y", 385)],
        )
    with pytest.raises(ValueError, match="2 passages but 1 vectors"):
        await store.insert([make(ALICE, "x", at=1.0), make(ALICE, "y", at=2.0)], [[1.0]])
    await store.insert([], [])
    assert await store.count(ALICE) == len(CORPUS)


async def test_a_closed_store_says_so(store: PassageStore) -> None:
    await put(store, *CORPUS)
    await store.aclose()
    await store.aclose()
    with pytest.raises(PassageStoreClosedError, match="closed"):
        await store.count(ALICE)
    with pytest.raises(PassageStoreClosedError):
        await store.search(ALICE, hash_embed("cat"))


async def test_optimize_keeps_every_passage(store: PassageStore) -> None:
    await put(store, *CORPUS)
    assert isinstance(await store.optimize(), bool)
    assert await store.list(ALICE) == list(CORPUS)
    assert (await store.search(ALICE, hash_embed("budget review"), top_k=1))[0].passage == CORPUS[2]


async def test_edge_folder_opens_in_one_store_only(tmp_path: Path) -> None:
    first = EdgePassageStore(tmp_path / "qdrant")
    try:
        with pytest.raises(PassageStoreLockedError) as caught:
            EdgePassageStore(tmp_path / "qdrant")
        message = str(caught.value)
        assert "opens in one process only" in message
        assert "MEMGRID_QDRANT_URL" in message
    finally:
        await first.aclose()
    again = EdgePassageStore(tmp_path / "qdrant")
    await again.aclose()


async def test_edge_folder_is_locked_against_other_processes(tmp_path: Path) -> None:
    folder = tmp_path / "qdrant"
    holder = EdgePassageStore(folder)
    try:
        await put(holder, *CORPUS)
        script = textwrap.dedent(
            f"""
            from storage.passages import EdgePassageStore, PassageStoreLockedError
            try:
                EdgePassageStore({str(folder)!r})
            except PassageStoreLockedError as error:
                print(error)
            """
        )
        with anyio.fail_after(60):
            done = await anyio.run_process([sys.executable, "-c", script], check=True)
        assert "opens in one process only" in done.stdout.decode()
    finally:
        await holder.aclose()


async def test_open_passage_store_picks_the_engine(tmp_path: Path) -> None:
    embedded = open_passage_store(StorageSettings(home=tmp_path))
    try:
        assert isinstance(embedded, EdgePassageStore)
        assert embedded.path == tmp_path / "qdrant"
    finally:
        await embedded.aclose()
    server = open_passage_store(
        StorageSettings(home=tmp_path, qdrant_url="https://127.0.0.1:1", qdrant_api_key="k")
    )
    assert isinstance(server, ServerPassageStore)
    await server.aclose()


def test_server_store_wants_exactly_one_target(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="exactly one of url="):
        ServerPassageStore()
    with pytest.raises(ValueError, match="exactly one of url="):
        ServerPassageStore("http://127.0.0.1:1", path=tmp_path)
