"""``memgrid demo`` (``make demo``): the recruiting pipeline on the embedded defaults.

It starts what it needs (the local Redis, the embedded Qdrant engine served from this process,
worker processes), applies ``examples/recruiting/workflow.yaml``, streams every agent's steps
while each resume goes through the pipeline, prints candidate → decision → drafted email, then
shows shared memory at work: the outreach agent is told of a rebrand, edits the shared
``company`` block, and the evaluator's next context carries the new name.

With ``OPENAI_API_KEY`` or ``OPENAI_BASE_URL`` set it uses that model; otherwise the scripted
model with the example's rules, and it says so.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import anyio

from agents.context import render_blocks
from agents.manage import delete_agent
from agents.rules import validate_rules
from agents.runtime import Runtime
from agents.tools.registry import load_import_path
from bus import BusSettings
from orchestrator.apply import Applied, apply_workflow
from orchestrator.bootstrap import open_runtime
from orchestrator.render import print_event, short
from orchestrator.scripting import model_or_stand_in
from orchestrator.supervisor import run_worker_process
from orchestrator.workflow import Workflow, load_workflow
from orchestrator.workflow_inputs import RunReport, run_inputs
from storage import keys
from storage.errors import NotFound

__all__ = ("example_dir", "run_recruiting_demo")

NEW_NAME = "Lettuce AI"


def example_dir() -> Path:
    """``examples/recruiting`` of this checkout (or of the current directory)."""
    for base in (Path.cwd(), Path(__file__).resolve().parent.parent):
        candidate = base / "examples" / "recruiting"
        if (candidate / "workflow.yaml").exists():
            return candidate
    raise FileNotFoundError("examples/recruiting/workflow.yaml not found; run from the repo root")


async def _reset(rt: Runtime, workflow: Workflow) -> None:
    """A demo starts fresh: drop the workflow's agents and shared blocks from earlier runs."""
    for spec in workflow.agents:
        try:
            agent = await rt.agents.resolve(spec.name)
        except NotFound:
            continue
        await delete_agent(rt, agent.id)
    wf_key = keys.workflow(workflow.name)
    for label in (b.label for b in workflow.blocks):
        block_id = await rt.redis.hget(wf_key, f"block:{label}")
        if block_id is not None:
            try:
                await rt.blocks.delete(
                    block_id.decode() if isinstance(block_id, bytes) else str(block_id)
                )
            except NotFound:
                pass
    await rt.redis.delete(wf_key)


async def _calls(
    rt: Runtime, agent_id: str, run_ids: set[str]
) -> list[tuple[str, dict[str, object]]]:
    calls = []
    for message in await rt.messages.list(agent_id, limit=500):
        if message.run_id in run_ids:
            for call in message.tool_calls:
                try:
                    args = json.loads(call.arguments)
                except ValueError:
                    args = {}
                calls.append((call.name, args if isinstance(args, dict) else {}))
    return calls


async def _row(rt: Runtime, applied: Applied, report: RunReport) -> tuple[str, str]:
    evaluator, outreach = applied.agents["evaluator"], applied.agents["outreach"]
    decision = "no decision"
    for name, args in await _calls(rt, evaluator.id, {report.entry_run.id}):
        if name == "reject":
            decision = "rejected"
        elif name == "send_message_to_agent_async":
            decision = "forwarded to outreach"
        elif name == "send_message" and decision == "no decision":
            decision = "replied: " + short(str(args.get("message", "")), 15)
    email = ""
    caused = {r.id for r in report.runs if r.agent_id == outreach.id}
    for name, args in await _calls(rt, outreach.id, caused):
        if name == "draft_candidate_email":
            email = str(args.get("content", ""))
    return decision, email


async def run_recruiting_demo(*, workers: int = 2) -> int:
    started = time.monotonic()
    folder = example_dir()
    workflow = load_workflow(folder / "workflow.yaml", check_rules=validate_rules)
    policy = f"{folder / 'policy.py'}:recruiting_policy"
    notice = (
        "No OPENAI_API_KEY or OPENAI_BASE_URL is set, so this demo runs on memgrid's "
        "SCRIPTED MODEL:\na stand-in that follows fixed rules "
        f"({folder / 'policy.py'}), so the whole system can be seen working with no key.\n"
    )
    async with model_or_stand_in(lambda: load_import_path(policy), notice=notice) as chosen:
        if chosen.endpoint is not None:
            # Workers are separate processes: they find the stand-in through the environment.
            os.environ["OPENAI_BASE_URL"] = chosen.endpoint
            os.environ["OPENAI_API_KEY"] = "scripted-model-needs-no-key"
            os.environ.setdefault("MEMGRID_MODEL", "openai/scripted")
        else:
            print(f"Using the model at {os.environ.get('OPENAI_BASE_URL') or 'api.openai.com'}.\n")
        async with open_runtime(own_archival=True) as rt:
            kwargs = rt.redis.connection_pool.connection_kwargs
            os.environ["MEMGRID_REDIS_URL"] = (
                f"unix://{kwargs['path']}"
                if kwargs.get("path")
                else f"redis://{kwargs.get('host')}:{kwargs.get('port')}/{kwargs.get('db', 0)}"
            )
            await _reset(rt, workflow)
            applied = await apply_workflow(rt, workflow)
            print(
                f"applied {workflow.path}: agents {', '.join(applied.agents)}; "
                f"shared block 'company' ({applied.blocks['company'].id})"
            )
            stopping = anyio.Event()
            async with anyio.create_task_group() as tg:
                for index in range(workers):
                    tg.start_soon(run_worker_process, index, 16, stopping)
                await _wait_for_workers(rt, workers)
                try:
                    missed = await _pipeline(rt, applied, folder)
                finally:
                    stopping.set()
        took = time.monotonic() - started
        if missed:
            # A model that does not follow the workflow is not a crash: say what did not
            # happen, and exit non-zero so a script running the demo sees it.
            print(f"\ndemo finished in {took:.1f}s, but not everything happened:")
            for line in missed:
                print(f"  - {line}")
            return 1
        print(f"\ndemo finished in {took:.1f}s")
    return 0


async def _wait_for_workers(rt: Runtime, count: int) -> None:
    from agents.runs import live_workers

    with anyio.fail_after(60):
        while True:  # the workers are other processes: their health keys are the signal
            if len(await live_workers(rt.redis)) >= count:
                return
            await anyio.sleep(0.1)


async def _pipeline(rt: Runtime, applied: Applied, folder: Path) -> list[str]:
    """Run the pipeline and the rebrand; what the model failed to do, as sentences."""
    rows = []
    for resume in sorted((folder / "resumes").iterdir()):
        text = resume.read_bytes().decode("utf-8", errors="replace")
        print(f"\n=== {resume.name} ===", flush=True)
        [report] = await run_inputs(
            rt,
            applied,
            "evaluator",
            [(resume.name, text)],
            on_event=lambda who, event: print_event(event, who=who),
        )
        decision, email = await _row(rt, applied, report)
        rows.append((resume.name, decision, email))
    print("\ncandidate                 decision                 drafted email")
    print("-" * 100)
    for name, decision, email in rows:
        print(f"{name:<25} {decision:<24} {short(email, 60) or '-'}")

    print("\n=== shared memory: outreach hears of a rebrand ===", flush=True)
    await run_inputs(
        rt,
        applied,
        "outreach",
        [
            (
                "rebrand",
                f"Update: the company has rebranded from AgentOS to {NEW_NAME}. "
                "Update your company block.",
            )
        ],
        on_event=lambda who, event: print_event(event, who=who),
    )
    evaluator = await rt.agents.get(applied.agents["evaluator"].id)
    company = [b for b in await rt.blocks.get_many(evaluator.block_ids) if b.label == "company"]
    print("\nthe evaluator's next context, its company block (compiled as the model will see it):")
    print(render_blocks(company))
    missed: list[str] = []
    if not any(email for _name, _decision, email in rows):
        missed.append(
            "no candidate was forwarded to outreach, so no email was drafted (the model never "
            "called send_message_to_agent_async and draft_candidate_email)"
        )
    if company and NEW_NAME not in company[0].value:
        missed.append(
            f"the outreach agent did not edit the shared 'company' block to {NEW_NAME!r} "
            "(the model never called core_memory_replace on it), so the evaluator's company "
            f"block still reads {short(company[0].value, 80)!r}"
        )
    if not company:
        missed.append("the evaluator has no 'company' block: the workflow did not share it")
    home = BusSettings.from_env().home
    print(
        f"\nEverything is stored under {home}: Redis (AOF) in redis/, embedded Qdrant in qdrant/."
        "\nInspect it with:"
        "\n  memgrid agents show evaluator      (blocks, tools, messages in recall)"
        f"\n  memgrid blocks history {company[0].id if company else '<block-id>'}"
        "\n  memgrid doctor"
    )
    return missed
