"""``memgrid demo memory``: one agent's memory tiers, on the embedded defaults.

With no ``OPENAI_API_KEY`` / ``OPENAI_BASE_URL`` it runs against the scripted model with the
rule-based policy below, and says so: a stand-in that follows fixed rules, so that the whole
system can be seen working with no key.
"""

from __future__ import annotations

import json
import os
import re
import time

import msgspec

from agents.letta_messages import Event
from agents.loop import run_turn
from agents.manage import AgentSpec, BlockSpec
from agents.runtime import LLMPool, Runtime
from agents.scripted import ChatRequest, Outcome, say, text, tool_call
from bus.envelopes import InboxMessage
from orchestrator.bootstrap import open_runtime
from orchestrator.render import print_event
from orchestrator.scripting import model_or_stand_in, recreate_agent

__all__ = ("DEMO_TURNS", "demo_policy", "run_demo")

DEMO_AGENT = "demo-memgpt"
DEMO_TURNS = (
    "Hi! My name is Bob and I love hiking.",
    "Please remember for later that my favourite trail is the Kalalau Trail on Kauai.",
    "Oh, sorry, my name is actually Charles.",
    "Which trail did I say was my favourite? Check your archival memory.",
    "What was the very first thing I told you about my hobbies?",
)


def _is_heartbeat(message_text: str) -> bool:
    return '"type": "heartbeat"' in message_text


def _user_text(request: ChatRequest) -> str:
    for message in reversed(request.messages):
        if message.role == "user" and not _is_heartbeat(message.text):
            return message.text
    return ""


def _after_tool(request: ChatRequest) -> Outcome:
    result = request.last_tool_result
    if result is None:
        return say("Done.")
    try:
        output = str(json.loads(result.content).get("message", ""))
    except (ValueError, AttributeError):
        output = result.content
    if result.name == "core_memory_append":
        name = re.search(r"Name: (\w+)", request.system_prompt)
        who = name.group(1) if name else "there"
        return say(f"Nice to meet you, {who}! I've noted that you love hiking.")
    if result.name == "core_memory_replace":
        return say("Sorry about that, Charles! I've corrected my memory.")
    if result.name == "archival_memory_insert":
        return say("Saved to my archival memory; I won't forget your favourite trail.")
    if result.name == "archival_memory_search":
        try:
            found = json.loads(output)[0]["content"]
        except (ValueError, LookupError, TypeError):
            found = output
        return say(f"According to my archival memory: {found}")
    if result.name == "conversation_search":
        try:
            hits = json.loads(output)["results"]
            first = next(h["content"] for h in reversed(hits) if h["role"] == "user")
        except (ValueError, LookupError, TypeError, StopIteration):
            first = output
        return say(f"Searching our conversation, you first told me: {first!r}")
    return say("Done.")


def demo_policy(request: ChatRequest) -> Outcome:
    """Fixed rules that exercise every memory tier, for the offline demo."""
    if not request.tools:
        return text("Charles (first introduced as Bob) loves hiking; favourite: Kalalau Trail.")
    last = request.last_message
    if last is not None and last.role == "user" and _is_heartbeat(last.text):
        return _after_tool(request)
    said = _user_text(request)
    lowered = said.lower()
    if "name is actually" in lowered:
        new = re.search(r"actually (\w+)", said)
        old = re.search(r"Name: (\w+)", request.system_prompt)
        return tool_call(
            "core_memory_replace",
            label="human",
            old_content=f"Name: {old.group(1) if old else 'Bob'}",
            new_content=f"Name: {new.group(1) if new else 'Charles'}",
            request_heartbeat=True,
            thought="The user corrected their name; fix core memory.",
        )
    if "my name is" in lowered:
        name = re.search(r"name is (\w+)", said)
        return tool_call(
            "core_memory_append",
            label="human",
            content=f"Name: {name.group(1) if name else 'unknown'}\nLoves hiking.",
            request_heartbeat=True,
            thought="A new user introduced themselves; save their name and hobby.",
        )
    if "remember" in lowered:
        return tool_call(
            "archival_memory_insert",
            content=said,
            tags=["preferences"],
            request_heartbeat=True,
            thought="A detail worth keeping long-term goes to archival memory.",
        )
    if "archival" in lowered or "favourite" in lowered:
        return tool_call(
            "archival_memory_search",
            query="favourite trail",
            request_heartbeat=True,
            thought="Look it up in archival memory.",
        )
    if "first" in lowered:
        return tool_call(
            "conversation_search",
            query="hiking",
            request_heartbeat=True,
            thought="Search recall memory for what they said about hobbies.",
        )
    return say(f"You said: {said}")


async def _turns(rt: Runtime, agent_id: str) -> None:
    for message in DEMO_TURNS:
        print(f"\nuser: {message}", flush=True)
        events: list[Event] = []
        async for event in run_turn(rt, agent_id, [InboxMessage(content=message)]):
            events.append(event)
            print_event(event)


async def run_demo(*, model_handle: str | None = None) -> int:
    """Run the demo; returns an exit code."""
    started = time.monotonic()
    notice = (
        "No OPENAI_API_KEY or OPENAI_BASE_URL is set, so this demo runs on memgrid's "
        "SCRIPTED MODEL:\na stand-in that follows fixed rules, so that the whole "
        "system can be seen working with no key.\n"
    )
    async with (
        open_runtime() as rt,
        model_or_stand_in(lambda: demo_policy, notice=notice) as chosen,
    ):
        if chosen.endpoint is not None:
            pool = rt.llm
            if not isinstance(pool, LLMPool):  # open_runtime's pool calls endpoints
                raise TypeError(f"the demo needs an LLMPool, not {type(pool).__name__}")
            pool.settings = msgspec.structs.replace(pool.settings, base_url=chosen.endpoint)
        agent = await recreate_agent(
            rt,
            AgentSpec(
                name=DEMO_AGENT,
                model=model_handle or chosen.handle,
                memory_blocks=[
                    BlockSpec(
                        label="persona",
                        value="I am Sam, a friendly outdoors guide with a long memory.",
                    ),
                    BlockSpec(label="human", value=""),
                ],
            ),
        )
        print(f"created agent {agent.name} ({agent.id}) on {agent.model}")
        await _turns(rt, agent.id)
        stored = await rt.agents.get(agent.id)
        blocks = await rt.blocks.get_many(stored.block_ids)
        print("\ncore memory after the conversation:")
        for block in blocks:
            print(f"  [{block.label}] {block.value!r}")
        print(f"recall memory: {await rt.messages.count(agent.id)} messages")
        if rt.archival is not None:
            print(f"archival memory: {await rt.archival.count(agent.id)} passages")
        home = os.environ.get("MEMGRID_HOME") or ".memgrid"
        print(
            f"\nEverything is stored under {home} (Redis with AOF, embedded Qdrant)."
            f"\nInspect it with: memgrid agents show {DEMO_AGENT}"
            f"  |  memgrid blocks history <block-id>  |  memgrid doctor"
        )
        print(f"demo finished in {time.monotonic() - started:.1f}s")
    return 0
