"""``/v1/agents/{agent_id}/archival-memory``: an agent's passages (create, list, search, delete).

Everything goes through the runtime's archival memory
(:class:`orchestrator.shared_archival.SharedArchival`), wherever the passage engine lives: in this
process, in the process that owns the embedded engine (``memgrid up``'s supervisor, reached
over Redis), or a Qdrant server (``MEMGRID_QDRANT_URL``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Literal

import msgspec
from litestar import Controller, delete, get, post
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from agents.letta_messages import iso
from orchestrator.api.errors import ApiError
from orchestrator.api.paging import Paging, cursors
from orchestrator.api.schemas import CreatePassageIn
from orchestrator.api.state import Api
from orchestrator.api.views import (
    ArchivalSearchResponse,
    ArchivalSearchResult,
    Deleted,
    PassageView,
    embedding_config,
    passage_view,
)
from storage.archives import ArchiveStore
from storage.passages import PassageDimensionError, PassageNotFoundError
from storage.records import Agent, Passage

if TYPE_CHECKING:
    from agents.tools.base import Archival
    from orchestrator.shared_archival import SharedArchival

__all__ = ("PassagesController", "check_embedding_change", "drop_passages", "shared_archival")

_MAX_TOP_K = 1000  # nearest passages one search returns at most


def _archival(api: Api) -> Archival:
    if api.rt.archival is None:
        raise ApiError(503, "archival memory is not configured in this process")
    return api.rt.archival


def shared_archival(api: Api) -> SharedArchival:
    """The process's archival memory with listing, deleting and bulk inserts.

    Raises:
        ApiError: 503 when the runtime has none of that kind.
    """
    from orchestrator.shared_archival import SharedArchival

    archival = _archival(api)
    if not isinstance(archival, SharedArchival):
        raise ApiError(503, "listing and deleting passages is not available in this process")
    return archival


async def check_embedding_change(api: Api, agent: Agent, embedding: str) -> None:
    """Refuse (409) to change the embedder of an agent that has passages.

    Its passages' vectors came from the old embedder: another model's vectors (of another
    size, or the same size in another space) would make every search meaningless.
    """
    if embedding == agent.embedding:
        return
    for archive in await ArchiveStore(api.rt.redis).archives_of(agent.id):
        if archive.embedding != embedding:
            raise ApiError(
                409,
                f"archive {archive.id} attached to the agent is embedded with "
                f"{archive.embedding}; it cannot be searched with {embedding}. Detach it "
                "first (PATCH .../archives/detach/{archive_id})",
                field="embedding",
            )
    if api.rt.archival is None:
        return
    count = await api.rt.archival.count(agent.id)
    if count:
        raise ApiError(
            409,
            f"the agent has {count} archival passage(s) embedded with {agent.embedding}; "
            f"they cannot be searched with {embedding}. Keep {agent.embedding}, or delete its "
            "archival memory (DELETE .../archival-memory/{id}) or create a new agent first",
            field="embedding",
        )


async def drop_passages(api: Api, agent_id: str) -> None:
    """Delete every passage of a deleted agent."""
    if api.rt.archival is not None:
        await shared_archival(api).delete_owner(agent_id)


def _views(api: Api, agent: Agent, passages: Sequence[Passage]) -> list[PassageView]:
    config = embedding_config(agent.embedding, api.openai_base_url)
    views = [passage_view(p, config) for p in passages]
    # A passage of an attached archive (same embedding: attach checks it) says whose it is.
    return [
        msgspec.structs.replace(v, archive_id=p.owner_id) if p.owner_id != agent.id else v
        for v, p in zip(views, passages, strict=True)
    ]


def _epoch(value: dt.datetime | None) -> float | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.timestamp()


class PassagesController(Controller):
    """An agent's archival memory."""

    path = "/v1/agents/{agent_id:str}/archival-memory"
    tags = ["archival memory"]

    @post("/", status_code=200)
    async def create(
        self, agent_id: FromPath[str], data: JSONBody[CreatePassageIn], api: Api
    ) -> list[PassageView]:
        """Insert a passage (embedded with the agent's embedder)."""
        agent = await api.agent(agent_id)
        if not data.text.strip():
            raise ApiError(422, "must not be empty", field="text")
        try:
            passage = await _archival(api).insert(
                agent.id, agent.embedding, data.text, list(data.tags or [])
            )
        except PassageDimensionError as exc:
            raise ApiError(409, str(exc), field="text") from None
        await api.refresh_embedding_sizes(force=True)  # the size the owner just learnt
        return _views(api, agent, [passage])

    @get("/", dependencies=cursors(100))
    async def list_passages(
        self,
        agent_id: FromPath[str],
        api: Api,
        paging: Paging,
        search: FromQuery[str | None] = None,
        ascending: FromQuery[bool | None] = True,
    ) -> list[PassageView]:
        """The agent's passages and its attached archives', oldest first; with ``search``,
        the nearest to it."""
        agent = await api.agent(agent_id)
        size = paging.size(100)
        after, before = paging.after, paging.before
        if search:
            hits = await _archival(api).search(
                agent.id,
                agent.embedding,
                search,
                # A page's limit may be "all" (10**23); a search returns at most the cap.
                top_k=min(max(size, 1), _MAX_TOP_K),
                offset=0,
                tags=None,
                match_all_tags=False,
                start=None,
                end=None,
                archive_ids=await ArchiveStore(api.rt.redis).ids_of(agent.id),
            )
            return _views(api, agent, [h.passage for h in hits][:size])
        store = shared_archival(api)
        # The agent's own passages and those of its attached archives, as one list.
        owners = [agent.id, *await ArchiveStore(api.rt.redis).ids_of(agent.id)]
        forward = ascending is not False
        try:
            if before is not None and after is None:
                found = await store.list(owners, limit=size, after=before, ascending=not forward)
                found.reverse()
            else:
                found = await store.list(owners, limit=size, after=after, ascending=forward)
                if before is not None:
                    ids = [p.id for p in found]
                    found = found[: ids.index(before)] if before in ids else found
        except PassageNotFoundError as exc:
            raise ApiError(404, str(exc), field="after", source="query") from None
        return _views(api, agent, list(found))

    @get("/search")
    async def search(
        self,
        agent_id: FromPath[str],
        query_text: Annotated[str, QueryParameter(name="query")],
        api: Api,
        tags: FromQuery[list[str] | None] = None,
        tag_match_mode: FromQuery[Literal["any", "all"]] = "any",
        top_k: FromQuery[int | None] = None,
        start_datetime: FromQuery[dt.datetime | None] = None,
        end_datetime: FromQuery[dt.datetime | None] = None,
    ) -> ArchivalSearchResponse:
        """The passages nearest in meaning to ``query``: the agent's own and those of the
        archives attached to it, ranked together."""
        agent = await api.agent(agent_id)
        if top_k is not None and not 1 <= top_k <= _MAX_TOP_K:
            raise ApiError(
                422, f"must be between 1 and {_MAX_TOP_K}", field="top_k", source="query"
            )
        hits = await _archival(api).search(
            agent.id,
            agent.embedding,
            query_text,
            top_k=top_k or 10,
            offset=0,
            tags=tags or None,
            match_all_tags=tag_match_mode == "all",
            start=_epoch(start_datetime),
            end=_epoch(end_datetime),
            archive_ids=await ArchiveStore(api.rt.redis).ids_of(agent.id),
        )
        results = [
            ArchivalSearchResult(
                id=h.passage.id,
                timestamp=iso(h.passage.created_at),
                content=h.passage.text,
                tags=list(h.passage.tags),
            )
            for h in hits
        ]
        return ArchivalSearchResponse(results=results, count=len(results))

    @delete("/{memory_id:str}", status_code=200)
    async def delete_passage(
        self, agent_id: FromPath[str], memory_id: FromPath[str], api: Api
    ) -> Deleted:
        """Delete one passage."""
        agent = await api.agent(agent_id)
        if not await shared_archival(api).delete(agent.id, [memory_id]):
            raise ApiError(
                404, f"agent has no passage with id {memory_id!r}", field="memory_id", source="path"
            )
        return Deleted(message=f"passage {memory_id} deleted")
