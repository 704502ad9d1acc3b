"""``memgrid sources ...``: documents (PDF, text, markdown) in archival memory.

``upload`` ingests in this process, with a progress bar (the API's upload jobs fill the same
``total_chunks``/``chunks_embedded`` fields of the file record as they go); attaching a source
copies its passages into an agent's archival memory.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import msgspec

from orchestrator.cli._common import UsageError, actions, command, emit, print_json, with_runtime

if TYPE_CHECKING:
    from agents.runtime import Runtime
    from storage.records import FileMeta, Source

__all__ = ("ProgressBar", "register")


def register(subparsers: Any) -> None:
    sub = actions(subparsers, "sources", "documents for archival memory")

    create = command(sub, "create", _create, "create a source", json_flag=True)
    create.add_argument("name")
    create.add_argument("--embedding", default=None, help="handle (default MEMGRID_EMBEDDING)")
    create.add_argument("--description", default="")
    command(sub, "list", _list, "sources and their files", json_flag=True)
    upload = command(
        sub, "upload", _upload, "ingest files into a source, showing progress", json_flag=True
    )
    upload.add_argument("source", help="source name or id")
    upload.add_argument("files", nargs="+", type=Path)

    for action, handler in (("attach", _attach), ("detach", _detach)):
        way = "to" if action == "attach" else "from"
        cmd = command(sub, action, handler, f"{action} a source {way} an agent")
        cmd.add_argument("source", help="source name or id")
        cmd.add_argument("agent", help="agent name or id")


class ProgressBar:
    """``name [#####.....] 12/40 chunks`` redrawn in place on a terminal; on a pipe, one line
    at each tenth so that logs stay short."""

    def __init__(self, name: str, out: TextIO | None = None, width: int = 30) -> None:
        self.name = name
        self.out = out or sys.stderr
        self.width = width
        self.tty = self.out.isatty()
        self._last_tenth = -1

    def __call__(self, done: int, total: int) -> None:
        fraction = done / total if total else 1.0
        filled = round(self.width * fraction)
        line = f"{self.name} [{'#' * filled}{'.' * (self.width - filled)}] {done}/{total} chunks"
        if self.tty:
            self.out.write(f"\r{line}")
            if done >= total:
                self.out.write("\n")
        elif int(fraction * 10) > self._last_tenth or done >= total:
            self._last_tenth = int(fraction * 10)
            self.out.write(f"{line}\n")
        self.out.flush()


def _create(args: argparse.Namespace) -> int:
    from storage.settings import StorageSettings
    from storage.sources import SourceStore, new_source

    if not args.name.strip():
        raise UsageError("a source needs a name")
    embedding = args.embedding or StorageSettings.from_env().embedding

    async def work(rt: Runtime) -> Source:
        return await SourceStore(rt.redis).create(
            new_source(args.name, embedding, description=args.description)
        )

    source = with_runtime(work)
    text = f"created source {source.name} ({source.id}), embedding {source.embedding}"
    emit(args, source, lambda: [text])
    return 0


def _list(args: argparse.Namespace) -> int:
    from storage.sources import SourceStore

    async def work(rt: Runtime) -> list[tuple[Source, list[FileMeta]]]:
        store = SourceStore(rt.redis)
        return [(s, await store.list_files(s.id)) for s in await store.list()]

    found = with_runtime(work)
    if args.json:
        rows = [{**msgspec.to_builtins(s), "files": msgspec.to_builtins(f)} for s, f in found]
        print_json(rows)
        return 0
    for source, files in found:
        print(f"{source.name} ({source.id}), embedding {source.embedding}")
        for meta in files:
            print(f"  {meta.file_name}: {_status(meta)}")
    if not found:
        print("(no sources)")
    return 0


def _status(meta: FileMeta) -> str:
    if meta.status == "completed":
        return f"completed, {meta.passages} passages"
    if meta.status == "processing" and meta.total_chunks:
        return f"processing, {meta.chunks_embedded}/{meta.total_chunks} chunks embedded"
    if meta.status == "error":
        return f"error: {meta.error}"
    return meta.status


def _upload(args: argparse.Namespace) -> int:
    from agents.ingest import file_type
    from agents.uploads import process_upload
    from storage.sources import SourceStore, new_file

    payloads: list[tuple[str, str, bytes]] = []
    for path in args.files:
        try:
            payloads.append((path.name, file_type(path.name), path.read_bytes()))
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        except OSError as exc:
            raise UsageError(f"{path}: {exc.strerror or exc}") from None

    async def work(rt: Runtime) -> list[FileMeta]:
        store = SourceStore(rt.redis)
        source = await store.resolve(args.source)

        async def embedding_of(agent_id: str) -> str:
            return (await rt.agents.get(agent_id)).embedding

        results = []
        for name, mime, data in payloads:
            meta = await store.add_file(
                new_file(source.id, name, file_type=mime, file_size=len(data))
            )
            bar = None if args.json else ProgressBar(name)
            results.append(
                await process_upload(
                    rt.archival,  # type: ignore[arg-type]  # SharedArchival: a PassageWriter
                    store,
                    source,
                    meta,
                    data,
                    embedding_of=embedding_of,
                    on_progress=bar,
                )
            )
        return results

    results = with_runtime(work)
    emit(args, results, lambda: [f"{meta.file_name}: {_status(meta)}" for meta in results])
    return 1 if any(m.status != "completed" for m in results) else 0


def _attach(args: argparse.Namespace) -> int:
    from agents.ingest import attach_source
    from storage.sources import SourceStore

    async def work(rt: Runtime) -> int:
        store = SourceStore(rt.redis)
        source = await store.resolve(args.source)
        agent = await rt.agents.resolve(args.agent)
        await store.attach(source.id, agent.id)
        return await attach_source(
            rt.archival,  # type: ignore[arg-type]  # SharedArchival: a PassageWriter
            source.id,
            agent.id,
            agent.embedding,
            progress=ProgressBar(f"{source.name} -> {agent.name}"),
        )

    copied = with_runtime(work)
    print(f"attached: {copied} passages copied into the agent's archival memory")
    return 0


def _detach(args: argparse.Namespace) -> int:
    from agents.ingest import delete_source_passages
    from storage.sources import SourceStore

    async def work(rt: Runtime) -> int:
        store = SourceStore(rt.redis)
        source = await store.resolve(args.source)
        agent = await rt.agents.resolve(args.agent)
        removed = await delete_source_passages(
            rt.archival,  # type: ignore[arg-type]  # SharedArchival: a PassageWriter
            agent.id,
            source.id,
        )
        await store.detach(source.id, agent.id)
        return removed

    removed = with_runtime(work)
    print(f"detached: {removed} passages removed from the agent's archival memory")
    return 0
