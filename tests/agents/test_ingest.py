"""Document ingestion: text extraction, chunking, and passages on the real embedded engine."""

from __future__ import annotations

import functools
import importlib.util
import io
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from pypdf import PdfWriter

from agents.archival import PassageArchival
from agents.ingest import (
    attach_source,
    chunk_text,
    delete_source_passages,
    extract_text,
    file_type,
    ingest,
    source_passage_id,
)
from agents.uploads import process_upload
from storage.embeddings import HashingEmbedder
from storage.passages import EdgePassageStore
from storage.sources import SourceStore, new_file, new_source


def _pdf(pages: list[list[str]]) -> bytes:
    """A minimal PDF with one text line per entry; "" draws a blank line (a space): the
    writer of the RAG example's handbook, loaded from its file."""
    path = Path(__file__).resolve().parents[2] / "examples" / "archival_rag" / "handbook.py"
    spec = importlib.util.spec_from_file_location("example_handbook", path)
    assert spec is not None and spec.loader is not None
    handbook = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(handbook)
    data: bytes = handbook.text_pdf(pages)
    return data


def _blank_pdf(*, password: str | None = None) -> bytes:
    writer = PdfWriter()
    writer.add_blank_page(width=612, height=792)
    if password is not None:
        writer.encrypt(password)
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


# --- extract_text --------------------------------------------------------------------------


def test_pdf_text_comes_back_with_paragraphs_and_pages() -> None:
    data = _pdf([["Vacation policy", "25 days per year.", "", "Sick leave"], ["Page two here"]])
    text = extract_text("Handbook.PDF", data)
    assert "Vacation policy\n25 days per year." in text
    assert chunk_text(text) == ["Vacation policy 25 days per year.\n\nSick leave\n\nPage two here"]


def test_text_and_markdown_are_utf8() -> None:
    assert extract_text("notes.txt", "café\n".encode()) == "café\n"
    assert extract_text("README.md", "\ufeff# Title".encode()) == "# Title"  # BOM dropped
    with pytest.raises(ValueError, match=r"latin\.txt: not UTF-8"):
        extract_text("latin.txt", "café".encode("latin-1"))


@pytest.mark.parametrize("name", ["report.docx", "image.png", "Makefile"])
def test_unsupported_types_are_refused_by_name(name: str) -> None:
    with pytest.raises(ValueError, match=rf"{re.escape(name)}: unsupported file type"):
        extract_text(name, b"whatever")
    with pytest.raises(ValueError, match="unsupported"):
        file_type(name)


def test_file_types() -> None:
    assert file_type("a.pdf") == "application/pdf"
    assert file_type("a.Markdown") == "text/markdown"
    assert file_type("dir.v2/a.txt") == "text/plain"


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"%PDF-1.4\nthis is not really a pdf", "not a readable PDF"),
        (b"", "not a readable PDF"),
        (_blank_pdf(), "no text layer"),
        (_blank_pdf(password="secret"), "encrypted"),
    ],
)
def test_bad_pdfs_are_refused_by_name(data: bytes, problem: str) -> None:
    with pytest.raises(ValueError, match=rf"broken\.pdf: .*{problem}"):
        extract_text("broken.pdf", data)


# --- chunk_text ----------------------------------------------------------------------------


def _document(paragraphs: int = 30) -> str:
    """Paragraphs of sentences of varied lengths; every word is unique (w0, w1, ...)."""
    counter = iter(range(100_000))
    out = []
    for p in range(paragraphs):
        sentences = [
            " ".join(f"w{next(counter)}" for _ in range(3 + (p * s) % 9)) + "."
            for s in range(1 + p % 7)
        ]
        out.append(" ".join(sentences))
    return "\n\n".join(out)


@pytest.mark.parametrize(("max_chars", "overlap"), [(1200, 150), (200, 50), (80, 0), (60, 30)])
def test_chunks_fit_keep_whole_words_and_cover_the_text(max_chars: int, overlap: int) -> None:
    text = _document()
    chunks = chunk_text(text, max_chars=max_chars, overlap=overlap)
    words = text.split()
    assert all(len(c) <= max_chars for c in chunks)
    assert all(set(c.split()) <= set(words) for c in chunks)  # no word was cut
    # Without the overlap (a suffix of the previous chunk), the chunks are the text in order.
    rest: list[str] = []
    for index, chunk in enumerate(chunks):
        tokens = chunk.split()
        if index:
            previous = chunks[index - 1].split()
            shared = max(
                n for n in range(len(tokens)) if tokens[:n] == previous[len(previous) - n :]
            )
            assert len(" ".join(tokens[:shared])) <= overlap
            tokens = tokens[shared:]
        rest += tokens
    assert rest == words


def test_paragraphs_pack_whole_and_overlap_starts_on_a_sentence() -> None:
    text = "First one here. Second one here.\n\nThird paragraph.\n\n" + "Fourth is long. " * 5
    chunks = chunk_text(text.strip(), max_chars=60, overlap=20)
    assert chunks[0] == "First one here. Second one here.\n\nThird paragraph."
    assert chunks[1].startswith("Third paragraph.\n\nFourth is long.")
    assert all(len(c) <= 60 for c in chunks)


def test_a_word_longer_than_a_chunk_is_the_only_thing_cut() -> None:
    chunks = chunk_text("see " + "x" * 25 + " end", max_chars=10, overlap=0)
    assert chunks == ["see", "xxxxxxxxxx", "xxxxxxxxxx", "xxxxx end"]


def test_empty_text_and_bad_sizes() -> None:
    assert chunk_text("") == []
    assert chunk_text(" \n\n \n") == []
    with pytest.raises(ValueError, match="max_chars"):
        chunk_text("x", max_chars=0)
    with pytest.raises(ValueError, match="overlap"):
        chunk_text("x", max_chars=10, overlap=10)
    with pytest.raises(ValueError, match="overlap"):
        chunk_text("x", overlap=-1)


# --- ingest, attach, detach ----------------------------------------------------------------


@pytest.fixture
async def archival(tmp_path: Path) -> AsyncIterator[PassageArchival]:
    """The embedded engine; ``hashing/<n>`` handles embed with n dimensions."""
    store = EdgePassageStore(tmp_path / "qdrant")
    archival = PassageArchival(store, lambda handle: HashingEmbedder(int(handle.split("/")[1])))
    try:
        yield archival
    finally:
        await archival.aclose()


HANDBOOK = "\n\n".join(
    [
        "Vacation policy. Every employee receives 25 days of paid vacation per year.",
        "Sick leave. Up to 10 sick days per year are paid in full.",
        "Expenses. Submit receipts in the finance tool within 30 days.",
    ]
)


async def test_ingest_stores_chunks_in_batches_and_is_idempotent(
    archival: PassageArchival,
) -> None:
    calls: list[tuple[int, int]] = []
    handbook = functools.partial(
        ingest,
        archival,
        "source-1",
        "hashing/64",
        "handbook.md",
        HANDBOOK.encode(),
        source_id="source-1",
        file_id="file-1",
        max_chars=80,
        overlap=0,
    )
    count = await handbook(
        progress=lambda d, t: calls.append((d, t)), batch_size=2, tags=["handbook"]
    )
    assert count == 3
    assert calls == [(0, 3), (2, 3), (3, 3)]
    stored = await archival.store.list("source-1")
    assert sorted(p.id for p in stored) == sorted(
        source_passage_id("source-1", "file-1", i) for i in range(3)
    )
    assert {(p.source_id, p.file_id, tuple(p.tags)) for p in stored} == {
        ("source-1", "file-1", ("handbook",))
    }
    again = await handbook()
    assert again == 3
    assert await archival.store.count("source-1") == 3


async def test_ingest_refuses_unreadable_files_before_writing(archival: PassageArchival) -> None:
    with pytest.raises(ValueError, match=r"scan\.pdf"):
        await ingest(
            archival,
            "source-1",
            "hashing/64",
            "scan.pdf",
            _blank_pdf(),
            source_id="source-1",
            file_id="file-1",
        )
    assert await archival.store.count("source-1") == 0


async def test_attach_copies_with_the_agents_embedding_and_detach_removes_them(
    archival: PassageArchival,
) -> None:
    for file_id, text in (("file-1", HANDBOOK), ("file-2", "Parental leave is 16 weeks.")):
        await ingest(
            archival,
            "source-1",
            "hashing/64",
            f"{file_id}.txt",
            text.encode(),
            source_id="source-1",
            file_id=file_id,
            max_chars=80,
            overlap=0,
        )
    await archival.insert("agent-1", "hashing/32", "my own memory", [])

    progress: list[tuple[int, int]] = []
    copied = await attach_source(
        archival,
        "source-1",
        "agent-1",
        "hashing/32",
        batch_size=3,
        progress=lambda d, t: progress.append((d, t)),
    )
    assert copied == 4
    assert progress == [(0, 4), (3, 4), (4, 4)]
    assert await archival.count("agent-1") == 5
    assert await attach_source(archival, "source-1", "agent-1", "hashing/32") == 4
    assert await archival.count("agent-1") == 5  # attaching again adds nothing

    [hit] = await archival.search(
        "agent-1",
        "hashing/32",
        "paid vacation days",
        top_k=1,
        offset=0,
        tags=None,
        match_all_tags=False,
        start=None,
        end=None,
    )
    assert "25 days of paid vacation" in hit.passage.text
    assert (hit.passage.source_id, hit.passage.file_id) == ("source-1", "file-1")

    assert await delete_source_passages(archival, "agent-1", "source-1", file_id="file-2") == 1
    assert await archival.count("agent-1") == 4
    assert await delete_source_passages(archival, "agent-1", "source-1") == 3
    assert [p.text for p in await archival.store.list("agent-1")] == ["my own memory"]
    assert await delete_source_passages(archival, "agent-1", "source-1") == 0
    assert await archival.store.count("source-1") == 4  # the source keeps its own


async def test_attach_one_file(archival: PassageArchival) -> None:
    for file_id in ("file-1", "file-2"):
        await ingest(
            archival,
            "source-1",
            "hashing/64",
            "a.txt",
            f"text of {file_id}".encode(),
            source_id="source-1",
            file_id=file_id,
        )
    assert await attach_source(archival, "source-1", "agent-1", "hashing/64", file_id="file-2") == 1
    [copy] = await archival.store.list("agent-1")
    assert copy.text == "text of file-2"


# --- an upload's progress on its file record ------------------------------------------------


class _Gated:
    """The real archival, holding each batch until the test has looked at the file record."""

    def __init__(self, inner: PassageArchival) -> None:
        self.inner = inner
        self.store = inner.store
        self.delete = inner.delete
        self.batches = 0
        self.entered = anyio.Event()
        self.go_on = anyio.Event()

    async def insert_many(self, *args: Any, **kwargs: Any) -> Any:
        self.batches += 1
        if self.batches == 2:  # the second batch: the first is embedded and recorded
            self.entered.set()
            await self.go_on.wait()
        return await self.inner.insert_many(*args, **kwargs)


async def test_an_upload_records_its_progress_while_embedding(
    archival: PassageArchival, redis_client: Any
) -> None:
    sources = SourceStore(redis_client)
    source = await sources.create(new_source("handbook", "hashing/64"))
    pages = "\n\n".join(f"Page {n}. " + "Policy text here. " * 60 for n in range(50))
    data = pages.encode()
    meta = await sources.add_file(
        new_file(source.id, "handbook.txt", file_type="text/plain", file_size=len(data))
    )
    gated = _Gated(archival)
    seen: list[tuple[int, int]] = []

    async def embedding_of(agent_id: str) -> str:
        return "hashing/64"

    async with anyio.create_task_group() as tg:
        tg.start_soon(
            lambda: process_upload(
                gated,
                sources,
                source,
                meta,
                data,
                embedding_of=embedding_of,
                on_progress=lambda done, total: seen.append((done, total)),
            )
        )
        with anyio.fail_after(10):
            await gated.entered.wait()
        midway = await sources.get_file(meta.id)
        assert midway.status == "processing"
        assert midway.chunks_embedded == 32 and midway.total_chunks > 32
        gated.go_on.set()
    done = await sources.get_file(meta.id)
    assert done.status == "completed" and done.passages == midway.total_chunks
    assert done.chunks_embedded == done.total_chunks == done.passages
    assert seen[0] == (0, done.passages) and seen[-1] == (done.passages, done.passages)


async def test_an_unreadable_upload_is_an_error_on_its_record(
    archival: PassageArchival, redis_client: Any
) -> None:
    sources = SourceStore(redis_client)
    source = await sources.create(new_source("docs", "hashing/64"))
    meta = await sources.add_file(
        new_file(source.id, "broken.pdf", file_type="application/pdf", file_size=3)
    )

    async def embedding_of(agent_id: str) -> str:
        return "hashing/64"

    failed = await process_upload(
        archival, sources, source, meta, b"%PD", embedding_of=embedding_of
    )
    assert failed.status == "error" and "broken.pdf" in (failed.error or "")
