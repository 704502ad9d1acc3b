"""``/v1/sources`` (letta-client 0.1.x) and ``/v1/folders`` (1.x): documents for archival RAG.

The two paths serve the same records. A source's files are ingested in the background
(:mod:`orchestrator.api.ingestion`); attaching a source to an agent copies its passages into
the agent's archival memory, where ``archival_memory_search`` finds them.
"""

from __future__ import annotations

from pathlib import PurePath
from typing import Literal

import msgspec
from litestar import Controller, MediaType, Response, Router, delete, get, patch, post
from litestar.datastructures import UploadFile
from litestar.params import FromPath, FromQuery, JSONBody, MultipartBody

from agents.ingest import file_type
from orchestrator.api._embedding import embedding_handle
from orchestrator.api.errors import ApiError
from orchestrator.api.ingestion import (
    FileMetadataView,
    SourceView,
    attach,
    detach,
    drop_file,
    drop_source,
    file_view,
    ingest_upload,
    source_view,
)
from orchestrator.api.paging import Paging, ordered
from orchestrator.api.passages import shared_archival
from orchestrator.api.schemas import SourceCreateIn, SourceUpdateIn
from orchestrator.api.state import Api
from orchestrator.api.views import AgentState, PassageView, embedding_config, passage_view
from storage.passages import PassageNotFoundError
from storage.records import FileMeta
from storage.settings import StorageSettings
from storage.sources import SourceStore, new_file, new_source

__all__ = ("source_routers",)

Duplicates = Literal["skip", "error", "suffix", "replace"]


def _embedding(data: SourceCreateIn, openai_base_url: str | None) -> str:
    named = embedding_handle(data.embedding, data.embedding_config, openai_base_url)
    return named or StorageSettings.from_env().embedding


def _suffixed(name: str, taken: set[str]) -> str:
    path = PurePath(name)
    number = 1
    while True:
        candidate = f"{path.stem}_({number}){path.suffix}"
        if candidate not in taken:
            return candidate
        number += 1


class _Sources(Controller):
    """A source's handlers, served under two paths (:func:`source_routers`)."""

    @post("/", status_code=200)
    async def create(self, data: JSONBody[SourceCreateIn], api: Api) -> SourceView:
        """Create a source (a name and the embedding its chunks use)."""
        from orchestrator.api.agents import check_embedding

        embedding = _embedding(data, api.openai_base_url)
        await check_embedding(embedding)
        source = new_source(data.name, embedding, description=data.description or "")
        return source_view(await SourceStore(api.rt.redis).create(source), api)

    @get("/", dependencies=ordered())
    async def list_sources(
        self, api: Api, *, name: FromQuery[str | None] = None, paging: Paging
    ) -> list[SourceView]:
        """Every source, oldest first unless ``order=desc``."""
        sources = await SourceStore(api.rt.redis).list()
        if name is not None:
            sources = [s for s in sources if s.name == name]
        return [source_view(s, api) for s in paging.of(sources, lambda s: s.id)]

    @get("/count")
    async def count_sources(self, api: Api) -> int:
        """How many sources there are."""
        return len(await SourceStore(api.rt.redis).list())

    @get("/name/{source_name:str}")
    async def id_by_name(self, source_name: FromPath[str], api: Api) -> Response[bytes]:
        """The id of the source with this name (a JSON string, as Letta answers)."""
        found = await SourceStore(api.rt.redis).get_by_name(source_name)
        if found is None:
            raise ApiError(404, f"no source named {source_name!r}", field="source_name")
        return Response(msgspec.json.encode(found.id), media_type=MediaType.JSON)

    @get("/{source_id:str}")
    async def retrieve(self, source_id: FromPath[str], api: Api) -> SourceView:
        """One source."""
        return source_view(await SourceStore(api.rt.redis).get(source_id), api)

    @patch("/{source_id:str}")
    async def modify(
        self, source_id: FromPath[str], data: JSONBody[SourceUpdateIn], api: Api
    ) -> SourceView:
        """Rename a source or change its description."""
        fields = {k: v for k, v in (("name", data.name), ("description", data.description)) if v}
        sources = SourceStore(api.rt.redis)
        if not fields:
            return source_view(await sources.get(source_id), api)
        return source_view(await sources.update(source_id, **fields), api)

    @delete("/{source_id:str}", status_code=200)
    async def delete_source(self, source_id: FromPath[str], api: Api) -> None:
        """Delete a source, its files and passages (also from the agents it was attached to)."""
        await drop_source(api, await SourceStore(api.rt.redis).get(source_id))

    @post("/{source_id:str}/upload", status_code=200)
    async def upload(
        self,
        source_id: FromPath[str],
        data: MultipartBody[dict[str, UploadFile]],
        api: Api,
        duplicate_handling: FromQuery[Duplicates] = "suffix",
        name: FromQuery[str | None] = None,
    ) -> FileMetadataView:
        """Upload a PDF, text or markdown file; it is ingested in the background.

        Poll ``GET /v1/jobs/{id}`` (or the file) until its status is ``completed``.
        """
        sources = SourceStore(api.rt.redis)
        source = await sources.get(source_id)
        upload = data.get("file")
        if not isinstance(upload, UploadFile):
            raise ApiError(422, "send the document as the multipart field 'file'", field="file")
        file_name = PurePath(name or upload.filename or "upload.txt").name
        try:
            mime = file_type(file_name)
        except ValueError as exc:
            raise ApiError(400, str(exc), field="file") from None
        content = await upload.read()
        existing = {f.file_name: f for f in await sources.list_files(source.id)}
        if file_name in existing:
            if duplicate_handling == "error":
                raise ApiError(409, f"the source already has a file named {file_name!r}")
            if duplicate_handling == "skip":
                return file_view(existing[file_name])
            if duplicate_handling == "replace":
                await drop_file(api, source, existing[file_name])
            else:
                file_name = _suffixed(file_name, set(existing))
        if api.background is None:
            raise ApiError(503, "this process cannot ingest documents (no background tasks)")
        meta = await sources.add_file(
            new_file(source.id, file_name, file_type=mime, file_size=len(content))
        )
        api.background.start_soon(ingest_upload, api, source, meta, content)
        return file_view(meta)

    @get("/{source_id:str}/files", dependencies=ordered())
    async def list_files(
        self, source_id: FromPath[str], api: Api, paging: Paging
    ) -> list[FileMetadataView]:
        """The source's files, oldest first unless ``order=desc``."""
        sources = SourceStore(api.rt.redis)
        await sources.get(source_id)
        files = await sources.list_files(source_id)
        return [file_view(f) for f in paging.of(files, lambda f: f.id)]

    @get("/{source_id:str}/files/{file_id:str}")
    async def retrieve_file(
        self, source_id: FromPath[str], file_id: FromPath[str], api: Api
    ) -> FileMetadataView:
        """One file of the source, with its ingestion status."""
        return file_view(await self._file(api, source_id, file_id))

    @delete("/{source_id:str}/{file_id:str}", status_code=204)
    async def delete_file(self, source_id: FromPath[str], file_id: FromPath[str], api: Api) -> None:
        """Delete a file and its passages."""
        meta = await self._file(api, source_id, file_id)
        await drop_file(api, await SourceStore(api.rt.redis).get(source_id), meta)

    @get("/{source_id:str}/agents")
    async def agents(self, source_id: FromPath[str], api: Api) -> list[str]:
        """Ids of the agents the source is attached to."""
        sources = SourceStore(api.rt.redis)
        await sources.get(source_id)
        return await sources.agents_of(source_id)

    @get("/{source_id:str}/passages")
    async def passages(
        self,
        source_id: FromPath[str],
        api: Api,
        after: FromQuery[str | None] = None,
        limit: FromQuery[int | None] = 100,
    ) -> list[PassageView]:
        """The source's chunks, in order."""
        source = await SourceStore(api.rt.redis).get(source_id)
        if limit is not None and not 1 <= limit <= 1000:
            raise ApiError(400, "limit must be between 1 and 1000", field="limit", source="query")
        try:
            found = await shared_archival(api).list(source.id, limit=limit or 100, after=after)
        except PassageNotFoundError as exc:
            raise ApiError(404, str(exc), field="after", source="query") from None
        config = embedding_config(source.embedding, api.openai_base_url)
        return [passage_view(p, config) for p in found]

    async def _file(self, api: Api, source_id: str, file_id: str) -> FileMeta:
        meta = await SourceStore(api.rt.redis).get_file(file_id)
        if meta.source_id != source_id:
            raise ApiError(404, f"source {source_id} has no file {file_id}", field="file_id")
        return meta


class _AgentSources(Controller):
    """An agent's sources (folders), served under two paths (:func:`source_routers`)."""

    @get("/", dependencies=ordered())
    async def list_agent_sources(
        self, agent_id: FromPath[str], api: Api, paging: Paging
    ) -> list[SourceView]:
        """The sources attached to the agent, oldest first unless ``order=desc``."""
        agent = await api.agent(agent_id)
        sources = await SourceStore(api.rt.redis).sources_of(agent.id)
        return [source_view(s, api) for s in paging.of(sources, lambda s: s.id)]

    @patch("/attach/{source_id:str}")
    async def attach_source(
        self, agent_id: FromPath[str], source_id: FromPath[str], api: Api
    ) -> AgentState:
        """Attach a source: its passages are copied into the agent's archival memory."""
        await attach(api, await SourceStore(api.rt.redis).get(source_id), agent_id)
        return await api.agent_state(await api.agent(agent_id))

    @patch("/detach/{source_id:str}")
    async def detach_source(
        self, agent_id: FromPath[str], source_id: FromPath[str], api: Api
    ) -> AgentState:
        """Detach a source: its passages leave the agent's archival memory."""
        await detach(api, await SourceStore(api.rt.redis).get(source_id), agent_id)
        return await api.agent_state(await api.agent(agent_id))


def source_routers() -> list[Router]:
    """The handlers under both of Letta's names: sources (letta-client 0.1.x), folders (1.x)."""
    return [
        Router(path, route_handlers=[controller], tags=[tag])
        for path, controller, tag in (
            ("/v1/sources", _Sources, "sources"),
            ("/v1/folders", _Sources, "folders"),
            ("/v1/agents/{agent_id:str}/sources", _AgentSources, "agents"),
            ("/v1/agents/{agent_id:str}/folders", _AgentSources, "agents"),
        )
    ]
