"""``/v1/archives`` and ``/v1/agents/{agent_id}/archives``: passage stores shared by agents.

An archive is a named store of passages with one embedding; its passages are owned by the
archive's id in the passage store. An agent attached to archives sees their passages in
archival memory: ``archival_memory_search`` and the agent's ``archival-memory`` search routes
rank the agent's own passages and its archives' together in one filtered query, and its
``archival-memory`` list shows both (an archive's with its ``archive_id``).
``archival_memory_insert`` and ``POST .../archival-memory`` write to the agent's own passages,
never to an archive (write to an archive through ``POST /v1/archives/{id}/passages``).

Embeddings: a query is embedded once, with the agent's embedding, so an archive can only be
attached to an agent with the same embedding handle; anything else is a 409 naming both
handles and their vector sizes (another model's vectors, even of the same size, lie in
another space and would make every hit meaningless). Deleting an archive detaches it from
every agent and deletes its passages; deleting an agent leaves its archives alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import msgspec
from litestar import Controller, delete, get, patch, post
from litestar.params import FromPath, FromQuery, JSONBody

from agents.letta_messages import iso
from orchestrator.api._embedding import embedding_handle
from orchestrator.api.errors import ApiError
from orchestrator.api.paging import Paging, newest_first
from orchestrator.api.passages import shared_archival
from orchestrator.api.schemas import (
    ArchiveCreateIn,
    ArchivePassageIn,
    ArchivePassagesIn,
    ArchiveUpdateIn,
)
from orchestrator.api.state import Api
from orchestrator.api.views import (
    AgentState,
    EmbeddingConfig,
    PassageView,
    embedding_config,
    passage_view,
)
from storage.archives import ArchiveStore, new_archive
from storage.errors import NotFound
from storage.passages import PassageDimensionError
from storage.records import Agent, Archive, Passage
from storage.settings import StorageSettings

__all__ = ("AgentArchivesController", "ArchivesController", "check_attachable")


class ArchiveView(msgspec.Struct, kw_only=True):
    """Letta's ``Archive``."""

    id: str
    name: str
    description: str | None = None
    organization_id: str = "org-memgrid"
    vector_db_provider: Literal["native"] = "native"
    embedding_config: EmbeddingConfig
    metadata: dict[str, object] = msgspec.field(default_factory=dict)
    created_at: str
    updated_at: str


def archive_view(archive: Archive, api: Api) -> ArchiveView:
    return ArchiveView(
        id=archive.id,
        name=archive.name,
        description=archive.description or None,
        embedding_config=embedding_config(archive.embedding, api.openai_base_url),
        metadata=dict(archive.metadata),
        created_at=iso(archive.created_at),
        updated_at=iso(archive.updated_at),
    )


def _passage_views(api: Api, archive: Archive, passages: Sequence[Passage]) -> list[PassageView]:
    config = embedding_config(archive.embedding, api.openai_base_url)
    return [
        msgspec.structs.replace(passage_view(p, config), archive_id=archive.id) for p in passages
    ]


def _size(api: Api, handle: str) -> int:
    return embedding_config(handle, api.openai_base_url).embedding_dim


def check_attachable(api: Api, archive: Archive, agent: Agent) -> None:
    """Refuse (409) an archive whose passages the agent's queries cannot search."""
    if archive.embedding == agent.embedding:
        return
    have, want = _size(api, archive.embedding), _size(api, agent.embedding)
    sizes = (
        f"its passages are {have}-dimensional ({archive.embedding}) and the agent's queries "
        f"{want}-dimensional ({agent.embedding})"
        if have != want
        else f"both make {have}-dimensional vectors, but {archive.embedding} and "
        f"{agent.embedding} are different models whose vectors cannot be compared"
    )
    raise ApiError(
        409,
        f"archive {archive.id} cannot be attached to agent {agent.id}: {sizes}. Attach it to "
        f"an agent created with embedding={archive.embedding!r}, or create an archive with "
        f"embedding={agent.embedding!r}",
        field="archive_id",
    )


def _texts(passages: Sequence[ArchivePassageIn], prefix: str) -> list[str]:
    for index, item in enumerate(passages):
        if not item.text.strip():
            raise ApiError(422, "must not be empty", field=prefix.format(index=index))
    return [item.text for item in passages]


async def _insert(
    api: Api, archive: Archive, texts: list[str], tags: list[str]
) -> list[PassageView]:
    try:
        passages = await shared_archival(api).insert_many(
            archive.id, archive.embedding, texts, tags
        )
    except PassageDimensionError as exc:
        raise ApiError(409, str(exc), field="text") from None
    await api.refresh_embedding_sizes(force=True)  # the size the archive just learnt
    return _passage_views(api, archive, passages)


class ArchivesController(Controller):
    """Archives: create, list, retrieve, modify, delete; their passages and agents."""

    path = "/v1/archives"
    tags = ["archives"]

    @post("/", status_code=200)
    async def create(self, data: JSONBody[ArchiveCreateIn], api: Api) -> ArchiveView:
        """Create an archive; its passages are embedded with ``embedding`` (else the
        server's default)."""
        from orchestrator.api.agents import check_embedding

        if not data.name.strip():
            raise ApiError(422, "must not be empty", field="name")
        named = embedding_handle(data.embedding, data.embedding_config, api.openai_base_url)
        handle = named or StorageSettings.from_env().embedding
        await check_embedding(handle)
        archive = new_archive(data.name, handle, description=data.description or "")
        return archive_view(await ArchiveStore(api.rt.redis).create(archive), api)

    @get("/", dependencies=newest_first(50))
    async def list_archives(
        self,
        api: Api,
        *,
        name: FromQuery[str | None] = None,
        agent_id: FromQuery[str | None] = None,
        paging: Paging,
        order_by: FromQuery[Literal["created_at"]] = "created_at",
    ) -> list[ArchiveView]:
        """Every archive (newest first unless ``order=asc``), by name or attached agent."""
        store = ArchiveStore(api.rt.redis)
        if agent_id is not None:
            archives = await store.archives_of((await api.agent(agent_id)).id)
        else:
            archives = await store.list()
        if name is not None:
            archives = [a for a in archives if a.name == name]
        return [archive_view(a, api) for a in paging.of(archives, lambda a: a.id)]

    @get("/{archive_id:str}")
    async def retrieve(self, archive_id: FromPath[str], api: Api) -> ArchiveView:
        """One archive."""
        return archive_view(await ArchiveStore(api.rt.redis).get(archive_id), api)

    @patch("/{archive_id:str}")
    async def modify(
        self, archive_id: FromPath[str], data: JSONBody[ArchiveUpdateIn], api: Api
    ) -> ArchiveView:
        """Rename an archive or change its description."""
        if data.name is not None and not data.name.strip():
            raise ApiError(422, "must not be empty", field="name")
        fields = (("name", data.name), ("description", data.description))
        changes = {k: v for k, v in fields if v is not None}
        store = ArchiveStore(api.rt.redis)
        if not changes:
            return archive_view(await store.get(archive_id), api)
        return archive_view(await store.update(archive_id, **changes), api)

    @delete("/{archive_id:str}", status_code=204)
    async def delete_archive(self, archive_id: FromPath[str], api: Api) -> None:
        """Delete an archive: it leaves every agent, and its passages are deleted."""
        store = ArchiveStore(api.rt.redis)
        archive = await store.get(archive_id)
        # Passages first: if that fails the archive is still there to delete again.
        await shared_archival(api).delete_owner(archive.id)
        await store.delete(archive.id)

    @get("/{archive_id:str}/agents", dependencies=newest_first(50))
    async def list_agents(
        self,
        archive_id: FromPath[str],
        api: Api,
        paging: Paging,
        include: FromQuery[list[str] | None] = None,
    ) -> list[AgentState]:
        """The agents the archive is attached to (newest first unless ``order=asc``)."""
        store = ArchiveStore(api.rt.redis)
        await store.get(archive_id)
        agents: list[Agent] = []
        for agent_id in await store.agents_of(archive_id):
            try:
                agents.append(await api.agent(agent_id))
            except NotFound:
                continue  # deleted meanwhile
        agents.sort(key=lambda a: (a.created_at, a.id))
        return [await api.agent_state(a) for a in paging.of(agents, lambda a: a.id)]

    @post("/{archive_id:str}/passages", status_code=200)
    async def create_passage(
        self, archive_id: FromPath[str], data: JSONBody[ArchivePassageIn], api: Api
    ) -> PassageView:
        """Embed a passage with the archive's embedding and store it in the archive."""
        archive = await ArchiveStore(api.rt.redis).get(archive_id)
        [text] = _texts([data], "text")
        [view] = await _insert(api, archive, [text], sorted(set(data.tags or [])))
        return view

    @post("/{archive_id:str}/passages/batch", status_code=200)
    async def create_passages(
        self, archive_id: FromPath[str], data: JSONBody[ArchivePassagesIn], api: Api
    ) -> list[PassageView]:
        """Store several passages in the archive (each with its own tags)."""
        archive = await ArchiveStore(api.rt.redis).get(archive_id)
        texts = _texts(data.passages, "passages.{index}.text")
        groups: dict[tuple[str, ...], list[int]] = {}
        for index, item in enumerate(data.passages):
            groups.setdefault(tuple(sorted(set(item.tags or []))), []).append(index)
        placed: dict[int, PassageView] = {}
        for tags, indexes in groups.items():
            made = await _insert(api, archive, [texts[i] for i in indexes], list(tags))
            placed.update(zip(indexes, made, strict=True))
        return [placed[index] for index in range(len(texts))]

    @delete("/{archive_id:str}/passages/{passage_id:str}", status_code=204)
    async def delete_passage(
        self, archive_id: FromPath[str], passage_id: FromPath[str], api: Api
    ) -> None:
        """Delete one passage of the archive."""
        archive = await ArchiveStore(api.rt.redis).get(archive_id)
        if not await shared_archival(api).delete(archive.id, [passage_id]):
            raise ApiError(
                404,
                f"archive {archive.id} has no passage with id {passage_id!r}",
                field="passage_id",
                source="path",
            )


class AgentArchivesController(Controller):
    """``/v1/agents/{agent_id}/archives``: attach and detach archives."""

    path = "/v1/agents/{agent_id:str}/archives"
    tags = ["agents"]

    @patch("/attach/{archive_id:str}")
    async def attach_archive(
        self, agent_id: FromPath[str], archive_id: FromPath[str], api: Api
    ) -> AgentState:
        """Attach an archive: its passages join the agent's archival memory searches."""
        agent = await api.agent(agent_id)
        store = ArchiveStore(api.rt.redis)
        archive = await store.get(archive_id)
        check_attachable(api, archive, agent)
        await store.attach(archive.id, agent.id)
        return await api.agent_state(agent)

    @patch("/detach/{archive_id:str}")
    async def detach_archive(
        self, agent_id: FromPath[str], archive_id: FromPath[str], api: Api
    ) -> AgentState:
        """Detach an archive: its passages leave the agent's searches (they stay in it)."""
        agent = await api.agent(agent_id)
        store = ArchiveStore(api.rt.redis)
        await store.get(archive_id)
        await store.detach(archive_id, agent.id)
        return await api.agent_state(agent)
