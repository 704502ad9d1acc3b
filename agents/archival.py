"""Archival memory of agents: the passage store plus the embedder each agent names."""

from __future__ import annotations

from collections.abc import Callable

from agents.tools.base import ScoredText
from storage.embeddings import Embedder
from storage.passages import PassageStore
from storage.records import Passage, new_id, now

__all__ = ("PassageArchival",)


class PassageArchival:
    """:class:`agents.tools.base.Archival` over a :class:`storage.passages.PassageStore`.

    Embedders are created on first use per handle and shared by every agent using it.
    """

    def __init__(
        self,
        store: PassageStore,
        embedder_for: Callable[[str], Embedder],
        *,
        clock: Callable[[], float] = now,
    ) -> None:
        self.store = store
        self._embedder_for = embedder_for
        self._embedders: dict[str, Embedder] = {}
        self._clock = clock

    def embedder(self, handle: str) -> Embedder:
        embedder = self._embedders.get(handle)
        if embedder is None:
            embedder = self._embedders[handle] = self._embedder_for(handle)
        return embedder

    async def insert(self, owner_id: str, embedding: str, text: str, tags: list[str]) -> Passage:
        return (await self.insert_many(owner_id, embedding, [text], tags))[0]

    async def insert_many(
        self,
        owner_id: str,
        embedding: str,
        texts: list[str],
        tags: list[str],
        *,
        source_id: str | None = None,
        file_id: str | None = None,
    ) -> list[Passage]:
        vectors = await self.embedder(embedding).embed(texts)
        passages = [
            Passage(
                id=new_id("passage"),
                owner_id=owner_id,
                text=text,
                tags=tags,
                source_id=source_id,
                file_id=file_id,
                created_at=self._clock(),
            )
            for text in texts
        ]
        await self.store.insert(passages, vectors)
        return passages

    async def search(
        self,
        owner_id: str,
        embedding: str,
        query: str,
        *,
        top_k: int,
        offset: int,
        tags: list[str] | None,
        match_all_tags: bool,
        start: float | None,
        end: float | None,
    ) -> list[ScoredText]:
        [vector] = await self.embedder(embedding).embed([query])
        found = await self.store.search(
            owner_id,
            vector,
            top_k=top_k,
            tags=tags,
            match_all_tags=match_all_tags,
            start=start,
            end=end,
            offset=offset,
        )
        return [ScoredText(passage=hit.passage, score=hit.score) for hit in found]

    async def count(self, owner_id: str) -> int:
        return await self.store.count(owner_id)

    async def tags(self, owner_id: str) -> list[str]:
        return await self.store.tags(owner_id)

    async def aclose(self) -> None:
        for embedder in self._embedders.values():
            await embedder.aclose()
        self._embedders.clear()
        await self.store.aclose()
