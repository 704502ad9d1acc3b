"""Searching several owners at once (an agent and the archives attached to it), in both
passage engines: one filtered query over the owners, never a merge of per-owner queries."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from storage.embeddings import hash_embed
from storage.passages import PassageDimensionError, PassageStore
from tests.storage.test_passages import ALICE, BOB, ENGINES, _open, make, put

ARCHIVE = "archive-shared"


@pytest.fixture(params=ENGINES)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[PassageStore]:
    opened = _open(str(request.param), tmp_path)
    try:
        yield opened
    finally:
        await opened.aclose()


async def _put_in_order(store: PassageStore, *owned: tuple[str, str]) -> None:
    """Store each (owner, text), created at 1.0, 2.0, ... in this order."""
    await put(store, *(make(owner, text, at=float(n)) for n, (owner, text) in enumerate(owned, 1)))


async def test_search_over_several_owners_ranks_them_together(store: PassageStore) -> None:
    await _put_in_order(
        store,
        (ALICE, "the cat sleeps on the warm sofa"),
        (ARCHIVE, "the cat sleeps on the sofa all day"),
        (ARCHIVE, "quarterly budget review"),
        (BOB, "the cat sleeps on the sofa all day long"),
    )
    hits = await store.search([ALICE, ARCHIVE], hash_embed("the cat sleeps on the sofa"), top_k=3)
    assert [hit.passage.owner_id for hit in hits].count(BOB) == 0
    assert {hit.passage.text for hit in hits[:2]} == {
        "the cat sleeps on the warm sofa",
        "the cat sleeps on the sofa all day",
    }
    assert len(hits) == 3
    scores = [hit.score for hit in hits]
    assert scores == sorted(scores, reverse=True)
    # Filters and paging apply across the owners as one result list.
    query = hash_embed("the cat sleeps on the sofa")
    page = await store.search([ALICE, ARCHIVE], query, top_k=1, offset=1)
    assert len(page) == 1 and page[0].passage.id == hits[1].passage.id
    tagged = await store.search([ARCHIVE, ALICE], hash_embed("cat"), top_k=5, start=2.0, end=3.0)
    assert {hit.passage.owner_id for hit in tagged} == {ARCHIVE}


async def test_a_single_owner_in_a_list_is_that_owner(store: PassageStore) -> None:
    await put(store, make(ALICE, "alpha", at=1.0), make(BOB, "alpha", at=2.0))
    hits = await store.search([ALICE], hash_embed("alpha"), top_k=5)
    assert [hit.passage.owner_id for hit in hits] == [ALICE]
    assert await store.search([], hash_embed("alpha"), top_k=5) == []


async def test_an_owner_of_another_dimension_is_named(store: PassageStore) -> None:
    await put(store, make(ARCHIVE, "alpha", at=1.0), dimension=8)
    with pytest.raises(PassageDimensionError, match=ARCHIVE):
        await store.search([ALICE, ARCHIVE], hash_embed("alpha"), top_k=5)


async def test_list_and_get_over_several_owners(store: PassageStore) -> None:
    await _put_in_order(
        store, (ALICE, "a1"), (ARCHIVE, "s2"), (BOB, "b3"), (ALICE, "a4"), (ARCHIVE, "s5")
    )
    both = [ALICE, ARCHIVE]
    assert [p.text for p in await store.list(both)] == ["a1", "s2", "a4", "s5"]
    assert [
        p.text for p in await store.list(both, limit=2, after="passage-archive-shared-2.0")
    ] == [
        "a4",
        "s5",
    ]
    newest = await store.list(both, limit=3, ascending=False)
    assert [p.text for p in newest] == ["s5", "a4", "s2"]
    assert (await store.get(both, "passage-archive-shared-2.0")) is not None
    assert await store.get(both, "passage-agent-bob-3.0") is None
