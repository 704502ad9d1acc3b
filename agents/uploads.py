"""Processing one uploaded file of a source, with its progress on the file record.

Shared by the API's background upload jobs and ``memgrid sources upload``: the file record
goes ``pending`` → ``processing`` (``total_chunks`` known once the text is chunked,
``chunks_embedded`` growing after each batch) → ``completed`` (``passages``) or ``error``
(the reason), and the source's passages are copied to every agent it is attached to.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio
import structlog

from agents.ingest import PassageWriter, attach_source, ingest
from storage.records import FileMeta, Source
from storage.sources import SourceStore

__all__ = ("process_upload",)

log = structlog.get_logger("memgrid.uploads")

OnProgress = Callable[[int, int], None]


async def process_upload(
    archival: PassageWriter,
    sources: SourceStore,
    source: Source,
    meta: FileMeta,
    data: bytes,
    *,
    embedding_of: Callable[[str], Awaitable[str]],
    on_progress: OnProgress | None = None,
) -> FileMeta:
    """Ingest ``data`` as ``meta``'s passages, then copy them to the source's agents.

    Never raises for a file or dependency failure: the returned (and stored) record says
    ``error`` with the reason. Cancellation marks the file ``error`` and is re-raised.

    Args:
        embedding_of: an agent id → that agent's embedding handle (copies are re-embedded).
        on_progress: also told ``(done, total)`` after each batch (a progress bar).
    """
    bound = log.bind(source_id=source.id, file_id=meta.id)

    async def progress(done: int, total: int) -> None:
        await sources.update_file(
            meta.id, status="processing", total_chunks=total, chunks_embedded=done
        )
        if on_progress is not None:
            on_progress(done, total)

    try:
        await sources.update_file(meta.id, status="processing")
        count = await ingest(
            archival,
            source.id,
            source.embedding,
            meta.file_name,
            data,
            source_id=source.id,
            file_id=meta.id,
            progress=progress,
        )
        for agent_id in await sources.agents_of(source.id):
            embedding = await embedding_of(agent_id)
            await attach_source(archival, source.id, agent_id, embedding, file_id=meta.id)
        done = await sources.update_file(meta.id, status="completed", passages=count)
        bound.info("file_ingested", passages=count)
        return done
    except anyio.get_cancelled_exc_class():
        with anyio.CancelScope(shield=True):
            await sources.update_file(
                meta.id, status="error", error="the server stopped during ingestion; upload again"
            )
        raise
    except Exception as exc:  # recorded on the file: the job's failure, not the process's
        bound.warning("file_ingestion_failed", error=repr(exc))
        message = str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"
        return await sources.update_file(meta.id, status="error", error=message)
