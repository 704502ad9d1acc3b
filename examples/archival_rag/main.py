"""Archival RAG: an employee handbook (a PDF) becomes searchable memory of an agent.

The example writes the handbook as a PDF, ingests it into a *source* (text extracted, cut into
chunks, embedded, stored as passages, with a progress bar), attaches the source to an agent
(its passages are copied into the agent's archival memory) and asks the agent about the
vacation policy: the agent calls ``archival_memory_search`` and answers from the handbook.
Run it::

    .venv/bin/python examples/archival_rag/main.py

With ``OPENAI_API_KEY`` or ``OPENAI_BASE_URL`` set the agent runs on that model
(``MEMGRID_MODEL``, default openai/gpt-4o-mini); with neither, on memgrid's scripted model
following ``policy.py``. Passages are embedded with ``MEMGRID_EMBEDDING`` (default: the local
all-MiniLM-L6-v2) and kept in the embedded Qdrant engine under ``MEMGRID_HOME``.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import anyio
from handbook import handbook_pdf  # ./handbook.py, beside this file
from policy import policy  # ./policy.py, beside this file: the stand-in's rules

from agents import (
    AgentSpec,
    AssistantMessage,
    BlockSpec,
    PassageArchival,
    Runtime,
    attach_source,
    extract_text,
    file_type,
)
from agents.ingest import ingest  # named like its module: the package cannot export it
from orchestrator import (
    SharedArchival,
    configure_logging,
    model_or_stand_in,
    open_runtime,
    recreate_agent,
    send,
)
from storage.settings import StorageSettings
from storage.sources import SourceStore, new_file, new_source

AGENT = "handbook-agent"
SOURCE = "employee_handbook"
QUESTION = "Search archival for our company's vacation policies"


def progress_bar(done: int, total: int) -> None:
    """A one-line text progress bar, redrawn in place."""
    width = 30
    filled = width * done // total if total else width
    bar = "#" * filled + "." * (width - filled)
    print(f"\ringesting [{bar}] {done}/{total} passages", end="", flush=True)
    if done == total:
        print()


async def passage_engine(rt: Runtime) -> PassageArchival:
    """This process's passage engine: ingesting writes to it directly, in batches."""
    shared = rt.archival  # opened on first use; owned by this process unless another has it
    archival = await shared.inner() if isinstance(shared, SharedArchival) else shared
    if not isinstance(archival, PassageArchival):
        raise SystemExit(
            "another memgrid process holds the embedded Qdrant engine of this MEMGRID_HOME; "
            "stop it (memgrid down) or set MEMGRID_QDRANT_URL, then run this again"
        )
    return archival


async def main() -> int:
    configure_logging("WARNING")
    # With no model configured, the scripted model stands in (and says so) until the end.
    async with model_or_stand_in(lambda: policy) as model, open_runtime() as rt:
        archival = await passage_engine(rt)
        sources = SourceStore(rt.redis)

        # 1. The document: a PDF written here, read back to check that its text extracts.
        data = handbook_pdf()
        path = Path(tempfile.gettempdir()) / "agentos-handbook.pdf"
        path.write_bytes(data)
        text = extract_text(path.name, data)
        print(f"wrote {path} ({len(data)} bytes); pypdf reads back {len(text)} characters")

        # 2. A source holding it: chunks embedded and stored as the source's passages.
        old = await sources.get_by_name(SOURCE)
        if old is not None:  # start from scratch on every run
            await archival.delete_owner(old.id)
            await sources.delete(old.id)
        embedding = StorageSettings.from_env().embedding
        source = await sources.create(new_source(SOURCE, embedding))
        meta = await sources.add_file(
            new_file(source.id, path.name, file_type=file_type(path.name), file_size=len(data))
        )
        count = await ingest(
            archival,
            source.id,
            embedding,
            path.name,
            data,
            source_id=source.id,
            file_id=meta.id,
            progress=progress_bar,
            max_chars=350,  # short chunks: about one section of the handbook each
            overlap=0,
            batch_size=2,  # small batches, so that the bar has steps to show
        )
        await sources.update_file(meta.id, status="completed", passages=count)
        print(f"source {SOURCE}: {count} passages embedded with {embedding}")

        # 3. An agent with the source attached: the passages join its archival memory.
        agent = await recreate_agent(  # start from scratch on every run
            rt,
            AgentSpec(
                name=AGENT,
                memory_blocks=[
                    BlockSpec(label="human", value="My name is Sarah"),
                    BlockSpec(label="persona", value="You are a helpful assistant"),
                ],
                model=model.handle,  # None: the environment's model, and its endpoint
                model_endpoint=model.endpoint,
                embedding=embedding,
            ),
        )
        attached = await attach_source(archival, source.id, agent.id, agent.embedding)
        print(f"attached {SOURCE} to {agent.name}: {attached} passages in its archival memory")

        # 4. The question.
        print(f"\nuser: {QUESTION}")
        # With no memgrid worker running, a worker in this process runs the turn.
        events = await send(rt, agent.id, QUESTION)
        replies = [e.content for e in events if isinstance(e, AssistantMessage)]
        if model.endpoint is not None:  # the stand-in stops with this script: forget its address
            await rt.agents.update(agent.id, model_endpoint=None)

    cited = bool(replies) and "25 days of paid vacation" in replies[-1]
    print(f"\nthe answer cites the handbook's vacation policy: {cited}")
    return model.exit_status(cited)  # the stand-in: 1 unless as expected


if __name__ == "__main__":
    sys.exit(anyio.run(main))
