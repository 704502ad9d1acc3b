"""Documents into archival memory: extract text, chunk it, embed and store the chunks.

A *source* (see :mod:`storage.sources`) is a named set of uploaded files. Its chunks are
passages in the passage store owned by the source itself (``owner_id = source.id``), each
carrying ``source_id`` and ``file_id``. Attaching a source to an agent copies them into the
agent's archival memory (owner = the agent, re-embedded with the agent's embedder, same
``source_id``/``file_id``), where ``archival_memory_search`` finds them; detaching deletes the
copies. The flow of an upload::

    text = extract_text(name, data)          # PDF (pypdf), .txt, .md
    chunks = chunk_text(text)                # paragraphs, then sentences, never mid-word
    await ingest(store, source.id, source.embedding, name, data,
                 source_id=source.id, file_id=meta.id, progress=bar)
    await attach_source(store, source.id, agent.id, agent.embedding)

Every write is idempotent: passage ids derive from the owner, file and chunk position, so a
repeated ingest of the same file with the same chunk sizes, or a repeated attach
(at-least-once callers, a retried upload job), overwrites the same passages instead of adding
copies.

Errors: :class:`ValueError` for files that cannot be read (unsupported type, unreadable or
encrypted PDF, text that is not UTF-8), with a message naming the file; the passage store's
errors (:mod:`storage.passages`) pass through.
"""

from __future__ import annotations

import inspect
import io
import re
import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import PurePath
from typing import Protocol

import anyio

from agents.tools.base import Archival
from storage.records import Passage

__all__ = (
    "SUPPORTED_SUFFIXES",
    "PassageLister",
    "PassageWriter",
    "Progress",
    "attach_source",
    "chunk_text",
    "delete_source_passages",
    "extract_text",
    "file_type",
    "ingest",
    "source_passage_id",
)

Progress = Callable[[int, int], Awaitable[None] | None]
"""Called as ``progress(done, total)`` after each batch (and once with ``done=0``); awaited
when it returns an awaitable (e.g. to store the progress)."""

SUPPORTED_SUFFIXES: dict[str, str] = {
    ".pdf": "application/pdf",
    ".txt": "text/plain",
    ".text": "text/plain",
    ".md": "text/markdown",
    ".markdown": "text/markdown",
}
"""File name suffixes that :func:`extract_text` reads, with their MIME types."""

_PAGE_SIZE = 256
_PARAGRAPH = re.compile(r"\n[ \t\r\f\v]*\n\s*")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "memgrid:source-passage")


class PassageLister(Protocol):
    """Lists an owner's passages page by page: a :class:`~storage.passages.PassageStore`, or
    :class:`orchestrator.shared_archival.SharedArchival` wherever the engine lives."""

    async def list(
        self, owner_id: str, *, limit: int = 50, after: str | None = None, ascending: bool = True
    ) -> list[Passage]:
        """Up to ``limit`` passages of ``owner_id`` in creation order, after ``after``."""
        ...


class PassageWriter(Archival, Protocol):
    """What ingesting and attaching need: :class:`agents.archival.PassageArchival` has it, and
    so has :class:`orchestrator.shared_archival.SharedArchival` in a process that does not own the
    embedded engine."""

    @property
    def store(self) -> PassageLister:
        """Where passages are listed (the passage store itself, for a local archival)."""
        ...

    async def delete(self, owner_id: str, passage_ids: list[str]) -> int:
        """Delete passages of ``owner_id``; returns how many there were."""
        ...


# --- reading files -------------------------------------------------------------------------


def file_type(filename: str) -> str:
    """The MIME type memgrid records for ``filename``.

    Raises:
        ValueError: the suffix is not one of :data:`SUPPORTED_SUFFIXES`.
    """
    suffix = PurePath(filename).suffix.lower()
    try:
        return SUPPORTED_SUFFIXES[suffix]
    except KeyError:
        supported = ", ".join(sorted(SUPPORTED_SUFFIXES))
        raise ValueError(
            f"{filename}: unsupported file type {suffix or '(no suffix)'!r}; memgrid reads "
            f"{supported}. Convert the document to PDF, text or markdown first."
        ) from None


def extract_text(filename: str, data: bytes) -> str:
    """The text of a document: PDF pages through pypdf, text and markdown as UTF-8.

    Args:
        filename: the file's name; its suffix selects the reader.
        data: the file's bytes.

    Raises:
        ValueError: an unsupported suffix, a PDF that cannot be read (corrupt, encrypted, or
            with no text layer), or text that is not UTF-8. The message names the file.
    """
    if file_type(filename) == "application/pdf":
        return _pdf_text(filename, data)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"{filename}: not UTF-8 text (byte {exc.start} is invalid); save it as UTF-8"
        ) from None


def _pdf_text(filename: str, data: bytes) -> str:
    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(data))
        encrypted = reader.is_encrypted
        pages = [] if encrypted else [page.extract_text() or "" for page in reader.pages]
    except Exception as exc:  # damaged files raise pypdf's errors and plain ones alike
        raise ValueError(f"{filename}: not a readable PDF ({type(exc).__name__}: {exc})") from None
    if encrypted:
        raise ValueError(f"{filename}: the PDF is encrypted; upload an unprotected copy")
    text = "\n\n".join(page.strip() for page in pages if page.strip())
    if not text:
        raise ValueError(
            f"{filename}: the PDF has no text layer (a scanned document?); memgrid does no "
            "OCR, so run OCR first or upload the text"
        )
    return text


# --- chunking ------------------------------------------------------------------------------


def chunk_text(text: str, *, max_chars: int = 1200, overlap: int = 150) -> list[str]:
    """Split ``text`` into chunks of at most ``max_chars`` characters for embedding.

    Paragraphs (separated by blank lines) are packed whole while they fit; a longer paragraph
    is split between sentences, a longer sentence between words. Whitespace inside a
    paragraph is collapsed to single spaces. Each chunk after the first begins with up to
    ``overlap`` characters from the end of the previous one (from a sentence start when there
    is one in reach, else from a word start), so that a fact on a boundary is found in both.
    Only a "word" longer than ``max_chars`` (a huge URL, a base64 blob) is ever cut.

    Raises:
        ValueError: ``max_chars`` is not positive, or ``overlap`` is negative or not smaller
            than ``max_chars``.
    """
    if max_chars <= 0:
        raise ValueError(f"max_chars must be positive, got {max_chars}")
    if not 0 <= overlap < max_chars:
        raise ValueError(f"overlap must be between 0 and max_chars - 1, got {overlap}")
    chunks: list[str] = []
    current = ""
    for piece, new_paragraph in _pieces(text, max_chars):
        sep = "\n\n" if new_paragraph else " "
        if not current:
            current = piece
        elif len(current) + len(sep) + len(piece) <= max_chars:
            current += sep + piece
        else:
            chunks.append(current)
            tail = _tail(current, overlap)
            fits = tail and len(tail) + len(sep) + len(piece) <= max_chars
            current = tail + sep + piece if fits else piece
    if current:
        chunks.append(current)
    return chunks


def _pieces(text: str, max_chars: int) -> list[tuple[str, bool]]:
    """Units no longer than ``max_chars``, each flagged when it starts a paragraph."""
    pieces: list[tuple[str, bool]] = []
    for raw in _PARAGRAPH.split(text):
        paragraph = " ".join(raw.split())
        if not paragraph:
            continue
        if len(paragraph) <= max_chars:
            pieces.append((paragraph, True))
            continue
        units: list[str] = []
        for sentence in _SENTENCE_END.split(paragraph):
            if len(sentence) <= max_chars:
                units.append(sentence)
            else:
                units += _words(sentence, max_chars)
        pieces += [(unit, index == 0) for index, unit in enumerate(units)]
    return pieces


def _words(sentence: str, max_chars: int) -> list[str]:
    """A long sentence as runs of whole words of at most ``max_chars`` characters."""
    runs: list[str] = []
    current = ""
    for word in sentence.split(" "):
        parts = [word[i : i + max_chars] for i in range(0, len(word), max_chars)]
        for part in parts:
            if current and len(current) + 1 + len(part) <= max_chars:
                current += " " + part
            else:
                if current:
                    runs.append(current)
                current = part
    if current:
        runs.append(current)
    return runs


def _tail(chunk: str, overlap: int) -> str:
    """The last ``overlap`` characters of ``chunk`` or fewer, starting on a whole sentence
    when one starts in that window, else on a whole word."""
    if overlap <= 0 or not chunk:
        return ""
    if len(chunk) <= overlap:
        return chunk
    start = len(chunk) - overlap
    window = chunk[start - 1 :]  # one character more, to see whether `start` begins a word
    boundary = _SENTENCE_END.search(window) or re.search(r"\s", window)
    if boundary is None:
        return ""
    return chunk[start - 1 + boundary.end() :].strip()


# --- storing -------------------------------------------------------------------------------


def source_passage_id(owner_id: str, file_id: str, index: int) -> str:
    """The id of chunk ``index`` of a file in ``owner_id``'s archival memory.

    Stable, so that repeating an ingest or an attach overwrites instead of duplicating.
    """
    return f"passage-{uuid.uuid5(_NAMESPACE, f'{owner_id}:{file_id}:{index}')}"


async def ingest(
    archival: PassageWriter,
    owner_id: str,
    embedding: str,
    filename: str,
    data: bytes,
    *,
    source_id: str,
    file_id: str,
    progress: Progress | None = None,
    tags: Sequence[str] = (),
    max_chars: int = 1200,
    overlap: int = 150,
    batch_size: int = 32,
) -> int:
    """Extract, chunk and store a file as passages of ``owner_id``; returns how many.

    Args:
        archival: where passages go (the process's :class:`agents.archival.PassageArchival`).
        owner_id: whose archival memory: a source id (then attach it to agents) or an agent id.
        embedding: the embedding handle to embed the chunks with.
        filename: the file's name (its suffix selects the reader).
        data: the file's bytes.
        source_id: recorded on every passage.
        file_id: recorded on every passage; with ``owner_id`` it keys the passage ids.
        progress: called as ``progress(done, total)`` first with 0 and after each batch.
        tags: tags for every passage.
        max_chars: chunk size, see :func:`chunk_text`.
        overlap: chunk overlap, see :func:`chunk_text`.
        batch_size: chunks embedded and stored per call.

    Raises:
        ValueError: the file cannot be read (see :func:`extract_text`) or bad chunk sizes.
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    # pypdf parses on the CPU for a while on big files: keep the event loop free.
    text = await anyio.to_thread.run_sync(extract_text, filename, data)
    chunks = chunk_text(text, max_chars=max_chars, overlap=overlap)
    total = len(chunks)
    await _report(progress, 0, total)
    for start in range(0, total, batch_size):
        batch = chunks[start : start + batch_size]
        ids = [source_passage_id(owner_id, file_id, start + i) for i in range(len(batch))]
        await archival.insert_many(
            owner_id,
            embedding,
            batch,
            sorted(set(tags)),
            source_id=source_id,
            file_id=file_id,
            ids=ids,
        )
        await _report(progress, start + len(batch), total)
    return total


async def _report(progress: Progress | None, done: int, total: int) -> None:
    if progress is not None:
        result = progress(done, total)
        if inspect.isawaitable(result):
            await result


async def _passages(store: PassageLister, owner_id: str) -> list[Passage]:
    """Every passage of ``owner_id``, oldest first."""
    found: list[Passage] = []
    after: str | None = None
    while True:
        page = await store.list(owner_id, limit=_PAGE_SIZE, after=after)
        found += page
        if len(page) < _PAGE_SIZE:
            return found
        after = page[-1].id


async def attach_source(
    archival: PassageWriter,
    source_id: str,
    agent_id: str,
    embedding: str,
    *,
    file_id: str | None = None,
    progress: Progress | None = None,
    batch_size: int = 32,
) -> int:
    """Copy a source's passages into an agent's archival memory; returns how many.

    The copies keep the text, tags, ``source_id`` and ``file_id``, and are embedded with
    the agent's ``embedding`` (which may differ from the source's). Idempotent: attaching
    twice leaves one copy of each passage.

    Args:
        archival: the process's passage archival.
        source_id: the source whose passages (owner = ``source_id``) are copied.
        agent_id: the agent that receives them.
        embedding: the agent's embedding handle.
        file_id: copy only this file's passages (for a file uploaded to a source that is
            already attached).
        progress: called as ``progress(done, total)``.
        batch_size: passages embedded and stored per call.
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    passages = await _passages(archival.store, source_id)
    if file_id is not None:
        passages = [p for p in passages if p.file_id == file_id]
    total = len(passages)
    await _report(progress, 0, total)
    for start in range(0, total, batch_size):
        batch = passages[start : start + batch_size]
        by_kind: dict[tuple[tuple[str, ...], str | None], list[Passage]] = {}
        for passage in batch:
            by_kind.setdefault((tuple(passage.tags), passage.file_id), []).append(passage)
        for (tags, file), group in by_kind.items():
            await archival.insert_many(
                agent_id,
                embedding,
                [p.text for p in group],
                list(tags),
                source_id=source_id,
                file_id=file,
                ids=[_copy_id(agent_id, p.id) for p in group],
            )
        await _report(progress, start + len(batch), total)
    return total


def _copy_id(agent_id: str, passage_id: str) -> str:
    return f"passage-{uuid.uuid5(_NAMESPACE, f'{agent_id}:{passage_id}')}"


async def delete_source_passages(
    archival: PassageWriter, owner_id: str, source_id: str, *, file_id: str | None = None
) -> int:
    """Delete ``owner_id``'s passages that came from a source (or one file of it).

    Detach a source from an agent with ``owner_id=agent.id``; drop a deleted file's chunks
    with ``owner_id=source.id, file_id=...``. (A deleted source's own passages go with
    ``archival.delete_owner(source.id)``.) Returns how many were deleted.
    """
    doomed = [
        p.id
        for p in await _passages(archival.store, owner_id)
        if p.source_id == source_id and (file_id is None or p.file_id == file_id)
    ]
    if not doomed:
        return 0
    return await archival.delete(owner_id, doomed)
