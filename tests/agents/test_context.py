"""Golden files pin the layout of the compiled context: regenerate with MEMGRID_REGOLD=1."""

from __future__ import annotations

import json
import os
from pathlib import Path

from agents.context import MemoryStats, compile_system, to_openai_messages
from agents.prompts import DEFAULT_SYSTEM_PROMPT
from agents.tools.registry import AgentTool, base_schemas
from storage.records import Block, Message, ToolCall

GOLDEN = Path(__file__).parent / "golden"
NOW = 1_763_700_000.0  # 2025-11-21 04:40 UTC


def _check(name: str, actual: str) -> None:
    path = GOLDEN / name
    if os.environ.get("MEMGRID_REGOLD"):
        path.write_text(actual)
    assert actual == path.read_text(), f"{name} changed; rerun with MEMGRID_REGOLD=1 if intended"


def test_system_message_layout() -> None:
    blocks = [
        Block(id="block-1", label="persona", value="I am Sam.", limit=2000),
        Block(
            id="block-2",
            label="human",
            value="Name: Bob\nLikes tea",
            description="Facts about the user.",
            limit=5000,
        ),
        Block(id="block-3", label="company", value="AgentOS", read_only=True, limit=100),
    ]
    stats = MemoryStats(
        now=NOW,
        last_memory_edit_at=NOW - 3600,
        recall_count=42,
        archival_count=7,
        archival_tags=("hr", "policy"),
        evicted_count=12,
    )
    system = compile_system(
        DEFAULT_SYSTEM_PROMPT,
        blocks,
        stats,
        summary="Bob asked about tea twice.",
        rules="<tool_rules>\n- send_message ends your turn.\n</tool_rules>",
    )
    _check("system.txt", system)
    # Order of sections: prompt, rules, blocks, metadata, summary.
    positions = [
        system.index(marker)
        for marker in (
            "You are a stateful agent",
            "<tool_rules>",
            "<memory_blocks>",
            "<memory_metadata>",
            "<conversation_summary>",
        )
    ]
    assert positions == sorted(positions)


def test_system_message_without_optional_sections() -> None:
    stats = MemoryStats(now=NOW, last_memory_edit_at=None, recall_count=0, archival_count=0)
    system = compile_system("Be brief.", [], stats)
    _check("system_minimal.txt", system)
    assert "<conversation_summary>" not in system
    assert "never" in system


def test_tool_schemas_carry_heartbeat_and_inner_thoughts() -> None:
    schemas = {
        name: AgentTool(name=name, schema=schema).openai()
        for name, schema in base_schemas().items()
    }
    _check("tools.json", json.dumps(schemas, indent=1, sort_keys=True) + "\n")
    for name, entry in schemas.items():
        props = entry["function"]["parameters"]["properties"]
        assert "inner_thoughts" in props
        assert ("request_heartbeat" in props) == (name != "send_message")


def test_messages_keep_tool_calls_with_results() -> None:
    call = ToolCall(id="call-1", name="send_message", arguments='{"message": "hi"}')
    messages = [
        Message(id="m1", agent_id="a", role="user", content="hello"),
        Message(id="m2", agent_id="a", role="assistant", content="thinking", tool_calls=[call]),
        Message(id="m3", agent_id="a", role="tool", content="ok", tool_call_id="call-1"),
    ]
    assert to_openai_messages(messages) == [
        {"role": "user", "content": "hello"},
        {
            "role": "assistant",
            "content": "thinking",
            "tool_calls": [
                {
                    "id": "call-1",
                    "type": "function",
                    "function": {"name": "send_message", "arguments": '{"message": "hi"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call-1", "content": "ok"},
    ]
