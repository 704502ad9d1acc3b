"""Building a :class:`agents.runtime.Runtime` from the environment, at process entry."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import anyio
import structlog

from agents.llm import LLMSettings
from agents.runtime import LLMPool, Runtime
from agents.tools.base import ScoredText
from agents.tools.registry import ImportPathRunner, SandboxRunner
from bus import BusSettings, connect, resolve_redis_url
from storage.records import Passage
from storage.settings import StorageSettings

if TYPE_CHECKING:
    from agents.archival import PassageArchival

__all__ = ("LazyArchival", "open_runtime")

log = structlog.get_logger("memgrid.runtime")


class LazyArchival:
    """Opens the passage store on first use, so commands that never touch archival memory
    do not take the embedded engine's one-process lock."""

    def __init__(self, settings: StorageSettings) -> None:
        self._settings = settings
        self._inner: PassageArchival | None = None
        self._lock = anyio.Lock()

    async def inner(self) -> PassageArchival:
        """The real archival memory, opened on first use (imports Qdrant only then)."""
        from agents.archival import PassageArchival
        from storage.embeddings.factory import embedder_from_handle
        from storage.passages import open_passage_store

        async with self._lock:
            if self._inner is None:
                store = await anyio.to_thread.run_sync(open_passage_store, self._settings)
                self._inner = PassageArchival(
                    store, lambda handle: embedder_from_handle(handle, self._settings)
                )
            return self._inner

    async def insert(
        self,
        owner_id: str,
        embedding: str,
        text: str,
        tags: list[str],
        *,
        passage_id: str | None = None,
    ) -> Passage:
        archival = await self.inner()
        return await archival.insert(owner_id, embedding, text, tags, passage_id=passage_id)

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
        archival = await self.inner()
        return await archival.search(
            owner_id,
            embedding,
            query,
            top_k=top_k,
            offset=offset,
            tags=tags,
            match_all_tags=match_all_tags,
            start=start,
            end=end,
        )

    async def count(self, owner_id: str) -> int:
        return await (await self.inner()).count(owner_id)

    async def tags(self, owner_id: str) -> list[str]:
        return await (await self.inner()).tags(owner_id)

    async def aclose(self) -> None:
        if self._inner is not None:
            await self._inner.aclose()
            self._inner = None


@asynccontextmanager
async def open_runtime(*, redis_url: str | None = None) -> AsyncIterator[Runtime]:
    """A runtime on the configured (or local) Redis, Qdrant, embedders and model endpoint."""
    if redis_url is None:
        redis_url = await anyio.to_thread.run_sync(resolve_redis_url, BusSettings.from_env())
    redis = connect(redis_url)
    storage = StorageSettings.from_env()
    archival = LazyArchival(storage)
    sandbox_env = {}
    api_url = os.environ.get("MEMGRID_API_URL")
    if api_url:
        sandbox_env["MEMGRID_API_URL"] = api_url
    rt = Runtime(
        redis=redis,
        llm=LLMPool(LLMSettings.from_env()),
        archival=archival,
        custom_tools=ImportPathRunner(sandbox=SandboxRunner(env=sandbox_env)),
    )
    try:
        yield rt
    finally:
        with anyio.CancelScope(shield=True):
            await rt.aclose()
            await archival.aclose()
            await redis.aclose()
