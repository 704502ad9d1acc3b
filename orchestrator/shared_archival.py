"""Archival memory shared by this host's processes, with failover of the embedded passage engine."""

from __future__ import annotations

import builtins
import os
import socket
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, TypeVar, Unpack

import anyio
import redis.asyncio as aioredis
import structlog
from anyio.abc import TaskGroup
from redis.exceptions import RedisError

from agents.tools.base import Archival, NewPassages, ScoredText, SearchOptions
from storage.records import Passage
from storage.settings import StorageSettings

if TYPE_CHECKING:
    from agents.archival import PassageArchival
    from agents.archival_rpc import RemoteArchival

__all__ = ("SharedArchival",)

log = structlog.get_logger("memgrid.runtime")  # the name operators already filter on
T = TypeVar("T")


class SharedArchival(Archival):
    """Archival memory for this process, opened on first use.

    With ``MEMGRID_QDRANT_URL`` it talks to Qdrant directly. Otherwise the first memgrid
    process to open the embedded engine owns it and serves the others over Redis
    (:mod:`agents.archival_rpc`); the rest get a remote handle. When the owner disappears, the
    next call tries to take the engine over.
    """

    def __init__(
        self, settings: StorageSettings, redis: aioredis.Redis, tg: TaskGroup | None
    ) -> None:
        self._settings = settings
        self._redis = redis
        self._tg = tg
        self._inner: Archival | None = None
        self._local: PassageArchival | None = None
        self._lock = anyio.Lock()

    @property
    def owner(self) -> bool:
        return self._local is not None

    async def inner(self) -> Archival:
        """The archival memory to use now (imports Qdrant only when first needed)."""
        from agents.archival import PassageArchival
        from agents.archival_rpc import ArchivalServer, RemoteArchival
        from storage.embeddings.factory import embedder_from_handle
        from storage.passages import PassageStoreLockedError, open_passage_store

        async with self._lock:
            if self._inner is not None:
                return self._inner
            try:
                store = await anyio.to_thread.run_sync(open_passage_store, self._settings)
            except PassageStoreLockedError:
                self._inner = RemoteArchival(self._redis)
                return self._inner
            local = PassageArchival(
                store,
                lambda handle: embedder_from_handle(handle, self._settings),
                on_dimension=self._share_size,
            )
            self._inner = self._local = local
            if not self._settings.qdrant_url and self._tg is not None:
                consumer = f"{socket.gethostname()}-{os.getpid()}"
                self._tg.start_soon(ArchivalServer(local, self._redis, consumer).serve)
                log.info("archival_owner", path=str(self._settings.home / "qdrant"))
            return local

    async def _share_size(self, handle: str, dimension: int) -> None:
        """Record a remote model's size for the views of every API process."""
        from storage.embeddings import record_size

        provider, _, model = handle.partition("/")
        if provider == "openai" and "@" not in model:  # a pinned size is in the handle
            try:
                await record_size(self._redis, model, self._settings.openai_base_url, dimension)
            except RedisError as exc:  # a view's hint: a later learner records it again
                log.info("embedding_size_not_shared", handle=handle, error=repr(exc))

    async def _drop(self) -> None:
        async with self._lock:
            if self._local is None:
                self._inner = None  # the owner may be gone: try to take the engine next time

    async def _guarded(self, call: Callable[[Archival], Awaitable[T]]) -> T:
        """``call`` on the archival memory in use; a failure of a remote one drops it."""
        archival = await self.inner()
        try:
            return await call(archival)
        except Exception:
            await self._drop()
            raise

    async def search(
        self, owner_id: str, embedding: str, query: str, **options: Unpack[SearchOptions]
    ) -> list[ScoredText]:
        return await self._guarded(lambda a: a.search(owner_id, embedding, query, **options))

    async def count(self, owner_id: str) -> int:
        return await self._guarded(lambda a: a.count(owner_id))

    async def tags(self, owner_id: str) -> list[str]:
        return await self._guarded(lambda a: a.tags(owner_id))

    # --- what the REST API and document ingestion need, wherever the engine lives --------

    @property
    def store(self) -> SharedArchival:
        """What :mod:`agents.ingest` lists passages through: this object itself."""
        return self

    async def _admin(self, call: Callable[[PassageArchival | RemoteArchival], Awaitable[T]]) -> T:
        """:meth:`_guarded` for the calls only a passage engine (local or remote) answers."""
        from agents.archival import PassageArchival
        from agents.archival_rpc import RemoteArchival
        from storage.passages import PassageStoreError

        archival = await self.inner()
        if not isinstance(archival, PassageArchival | RemoteArchival):
            raise TypeError(f"{type(archival).__name__} cannot list or delete passages")
        try:
            return await call(archival)
        except Exception as exc:
            if not isinstance(exc, PassageStoreError):  # a refusal of the store is no outage
                await self._drop()
            raise

    async def add_passages(
        self, owner_id: str, embedding: str, batch: NewPassages
    ) -> builtins.list[Passage]:
        return await self._admin(lambda a: a.add_passages(owner_id, embedding, batch))

    async def list(
        self,
        owner_id: str | Sequence[str],
        *,
        limit: int = 50,
        after: str | None = None,
        ascending: bool = True,
    ) -> builtins.list[Passage]:
        """A page of ``owner_id``'s passages (or several owners' as one list) in creation
        order, after the passage ``after``.

        Raises:
            PassageNotFoundError: ``after`` is not a passage of ``owner_id``.
        """
        from agents.archival import PassageArchival

        def listing(a: PassageArchival | RemoteArchival) -> Awaitable[builtins.list[Passage]]:
            lister = a.store if isinstance(a, PassageArchival) else a
            return lister.list(owner_id, limit=limit, after=after, ascending=ascending)

        return await self._admin(listing)

    async def delete(self, owner_id: str, passage_ids: builtins.list[str]) -> int:
        """Delete passages of ``owner_id``; returns how many there were."""
        return await self._admin(lambda a: a.delete(owner_id, passage_ids))

    async def delete_owner(self, owner_id: str) -> int:
        """Delete every passage of ``owner_id``; returns how many there were."""
        return await self._admin(lambda a: a.delete_owner(owner_id))

    async def aclose(self) -> None:
        if self._local is not None:
            await self._local.aclose()
        self._inner = self._local = None
