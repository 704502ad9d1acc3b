"""Documents behind ``/v1/sources`` and ``/v1/folders``: views, upload jobs, attachments.

An upload is stored as a ``pending`` file record and ingested in the background of the API
process (:attr:`ApiState.background`): text extracted, chunked, embedded and stored as the
source's passages (:func:`agents.ingest.ingest`), then copied into the archival memory of
every agent the source is attached to. The file record's status is the job's status:
``GET /v1/jobs/{file_id}`` answers it as a Letta ``Job``, and the upload's answer carries it
as ``status`` besides Letta's ``processing_status``, so the course's
``while job.status != "completed": job = client.jobs.retrieve(job.id)`` works as written.

Ingestion is at-most-once per upload: a server that stops mid-way marks the file ``error``
(upload it again), it does not resume. Re-ingesting is idempotent (stable passage ids).
"""

from __future__ import annotations

from typing import Literal

import msgspec
import structlog

from agents.ingest import attach_source, delete_source_passages
from agents.letta_messages import iso
from agents.uploads import process_upload
from orchestrator.api.passages import shared_archival
from orchestrator.api.state import ApiState
from orchestrator.api.views import EmbeddingConfig, embedding_config
from storage.records import FileMeta, Source
from storage.sources import SourceStore

__all__ = (
    "FileMetadataView",
    "JobView",
    "SourceView",
    "attach",
    "detach",
    "drop_file",
    "drop_source",
    "file_job_view",
    "file_view",
    "ingest_upload",
    "source_view",
)

log = structlog.get_logger("memgrid.api")

JobStatus = Literal["created", "running", "completed", "failed"]
ProcessingStatus = Literal["pending", "parsing", "embedding", "completed", "error"]

_JOB_STATUS: dict[str, JobStatus] = {
    "pending": "created",
    "processing": "running",
    "completed": "completed",
    "error": "failed",
}
_PROCESSING: dict[str, ProcessingStatus] = {
    "pending": "pending",
    "processing": "embedding",
    "completed": "completed",
    "error": "error",
}


class SourceView(msgspec.Struct, kw_only=True):
    """Letta's ``Source`` (``Folder`` in 1.x clients: the same fields)."""

    id: str
    name: str
    description: str | None = None
    instructions: str | None = None
    metadata: dict[str, str] = msgspec.field(default_factory=dict)
    embedding_config: EmbeddingConfig
    created_at: str
    updated_at: str


class FileMetadataView(msgspec.Struct, kw_only=True):
    """Letta's ``FileMetadata``, plus ``status``: the file's ingestion as a job status."""

    id: str
    source_id: str
    file_name: str
    original_file_name: str
    file_type: str
    file_size: int
    processing_status: ProcessingStatus
    error_message: str | None = None
    total_chunks: int | None = None
    chunks_embedded: int | None = None
    created_at: str
    updated_at: str
    status: JobStatus


class JobView(msgspec.Struct, kw_only=True):
    """Letta's ``Job``: here always a file's ingestion."""

    id: str
    status: JobStatus
    job_type: str = "job"
    created_at: str
    updated_at: str
    completed_at: str | None = None
    metadata: dict[str, str] = msgspec.field(default_factory=dict)


def source_view(source: Source, api: ApiState) -> SourceView:
    created = iso(source.created_at)
    return SourceView(
        id=source.id,
        name=source.name,
        description=source.description or None,
        embedding_config=embedding_config(source.embedding, api.openai_base_url),
        created_at=created,
        updated_at=created,
    )


def file_view(meta: FileMeta) -> FileMetadataView:
    created = iso(meta.created_at)
    done = meta.status == "completed"
    return FileMetadataView(
        id=meta.id,
        source_id=meta.source_id,
        file_name=meta.file_name,
        original_file_name=meta.file_name,
        file_type=meta.file_type,
        file_size=meta.file_size,
        processing_status=_PROCESSING[meta.status],
        error_message=meta.error,
        total_chunks=meta.passages if done else meta.total_chunks or None,
        chunks_embedded=meta.passages if done else meta.chunks_embedded,
        created_at=created,
        updated_at=created,
        status=_JOB_STATUS[meta.status],
    )


def file_job_view(meta: FileMeta) -> JobView:
    created = iso(meta.created_at)
    finished = meta.status in ("completed", "error")
    return JobView(
        id=meta.id,
        status=_JOB_STATUS[meta.status],
        created_at=created,
        updated_at=created,
        completed_at=created if finished else None,
        metadata={"source_id": meta.source_id, "file_id": meta.id, "type": "file_upload"},
    )


async def ingest_upload(api: ApiState, source: Source, meta: FileMeta, data: bytes) -> None:
    """Ingest an uploaded file and copy its passages to the agents the source is attached
    to; the file record tells how it went, with its progress. Never raises (but is
    cancellable)."""

    async def embedding_of(agent_id: str) -> str:
        return (await api.agent(agent_id)).embedding

    await process_upload(
        shared_archival(api),
        SourceStore(api.rt.redis),
        source,
        meta,
        data,
        embedding_of=embedding_of,
    )


async def attach(api: ApiState, source: Source, agent_id: str) -> None:
    """Attach a source to an agent: record it and copy the source's passages."""
    agent = await api.agent(agent_id)
    await SourceStore(api.rt.redis).attach(source.id, agent.id)
    await attach_source(shared_archival(api), source.id, agent.id, agent.embedding)


async def detach(api: ApiState, source: Source, agent_id: str) -> None:
    """Detach a source from an agent: forget it and delete the copied passages."""
    agent = await api.agent(agent_id)
    await delete_source_passages(shared_archival(api), agent.id, source.id)
    await SourceStore(api.rt.redis).detach(source.id, agent.id)


async def drop_file(api: ApiState, source: Source, meta: FileMeta) -> None:
    """Delete a file record, its passages and their copies in attached agents."""
    sources = SourceStore(api.rt.redis)
    archival = shared_archival(api)
    for agent_id in await sources.agents_of(source.id):
        await delete_source_passages(archival, agent_id, source.id, file_id=meta.id)
    await delete_source_passages(archival, source.id, source.id, file_id=meta.id)
    await sources.delete_file(meta.id)


async def drop_source(api: ApiState, source: Source) -> None:
    """Delete a source, its files and passages, and the copies in attached agents."""
    sources = SourceStore(api.rt.redis)
    archival = shared_archival(api)
    for agent_id in await sources.agents_of(source.id):
        await delete_source_passages(archival, agent_id, source.id)
    await archival.delete_owner(source.id)
    await sources.delete(source.id)
