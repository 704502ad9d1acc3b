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

import os
import sys
import tempfile
from contextlib import AsyncExitStack
from pathlib import Path

import anyio
from handbook import handbook_pdf  # ./handbook.py, beside this file

from agents import (
    AgentSpec,
    AssistantMessage,
    BlockSpec,
    Event,
    PassageArchival,
    RunStore,
    Runtime,
    Worker,
    WorkerSettings,
    attach_source,
    create_agent,
    delete_agent,
    extract_text,
    file_type,
    live_workers,
)
from agents.ingest import ingest  # named like its module: the package cannot export it
from agents.scripted import ScriptedModel
from bus.envelopes import InboxMessage
from orchestrator import SharedArchival, configure_logging, open_runtime, print_event
from storage.errors import NotFound
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


async def send(rt: Runtime, agent_id: str, text: str) -> list[Event]:
    """Queue a message on the agent's inbox and print the run's events as they happen.

    With no memgrid worker running, a worker in this process runs until the inbox is empty.
    """
    print(f"\nuser: {text}")
    runs = RunStore(rt.redis)
    run = await runs.submit(agent_id, [InboxMessage(content=text)])
    events = []
    async with anyio.create_task_group() as tg:
        if not await live_workers(rt.redis):
            tg.start_soon(Worker(rt, WorkerSettings(burst=True)).run)
        async for event in runs.follow(agent_id, run.run_id):
            print_event(event)
            events.append(event)
    return events


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
    real = bool(os.environ.get("OPENAI_API_KEY") or os.environ.get("OPENAI_BASE_URL"))
    async with AsyncExitStack() as stack:
        endpoint = None
        if not real:
            from policy import policy

            scripted = await stack.enter_async_context(ScriptedModel.serve(policy))
            endpoint = scripted.base_url
            print(
                "No OPENAI_API_KEY or OPENAI_BASE_URL is set: the agent runs on memgrid's "
                "SCRIPTED MODEL, a stand-in that follows the fixed rules in policy.py."
            )
        rt = await stack.enter_async_context(open_runtime())
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
        try:
            old_agent = await rt.agents.resolve(AGENT)
            await archival.delete_owner(old_agent.id)
            await delete_agent(rt, old_agent.id)
        except NotFound:
            pass
        agent = await create_agent(
            rt,
            AgentSpec(
                name=AGENT,
                memory_blocks=[
                    BlockSpec(label="human", value="My name is Sarah"),
                    BlockSpec(label="persona", value="You are a helpful assistant"),
                ],
                model=None if real else "openai/scripted",
                model_endpoint=endpoint,  # None: the model endpoint of the environment
                embedding=embedding,
            ),
        )
        attached = await attach_source(archival, source.id, agent.id, agent.embedding)
        print(f"attached {SOURCE} to {agent.name}: {attached} passages in its archival memory")

        # 4. The question.
        events = await send(rt, agent.id, QUESTION)
        replies = [e.content for e in events if isinstance(e, AssistantMessage)]
        if endpoint is not None:  # the stand-in stops with this script: forget its address
            await rt.agents.update(agent.id, model_endpoint=None)

    cited = bool(replies) and "25 days of paid vacation" in replies[-1]
    print(f"\nthe answer cites the handbook's vacation policy: {cited}")
    if real or cited:
        return 0
    print("the scripted run did NOT reach the expected outcome")
    return 1


if __name__ == "__main__":
    sys.exit(anyio.run(main))
