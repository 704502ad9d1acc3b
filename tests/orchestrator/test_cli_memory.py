"""An agent's memory from the CLI: blocks, archival memory, recall pages, the context window.

Real subprocesses, a real Redis, the embedded Qdrant engine and the scripted model over HTTP.
"""

from __future__ import annotations

import json

from agents.scripted import ThreadedScriptedModel
from tests.orchestrator._cli import memgrid as _memgrid


def _ok(env: dict[str, str], *args: str) -> str:
    done = _memgrid(env, *args)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout


def test_blocks_are_shown_and_edited_by_label(
    env: dict[str, str], served: ThreadedScriptedModel
) -> None:
    _ok(env, "agents", "create", "memo", "--persona", "I am Memo.", "--model", "openai/scripted")
    _ok(env, "send", "memo", "My name is Bob")
    shown = _ok(env, "memory", "memo")
    assert "[human]" in shown and "Name: Bob" in shown and "[persona]" in shown

    edited = json.loads(
        _ok(env, "memory", "memo", "edit", "human", "--append", "Likes tea", "--json")
    )
    assert edited["value"] == "Name: Bob\nLikes tea"
    _ok(env, "memory", "memo", "edit", "human", "--replace", "Bob", "Robert")
    # The next request to the model carries the edited block.
    _ok(env, "send", "memo", "hello again")
    assert "Name: Robert\nLikes tea" in served.requests[-1].system_prompt

    missing = _memgrid(env, "memory", "memo", "edit", "nope", "--value", "x")
    assert missing.returncode == 2
    assert "no block labelled 'nope' (has: persona, human)" in missing.stderr
    absent = _memgrid(env, "memory", "memo", "edit", "human", "--replace", "Zed", "Y")
    assert absent.returncode == 2 and "'Zed' is not in the block" in absent.stderr
    too_long = _memgrid(env, "memory", "memo", "edit", "human", "--value", "x" * 6000)
    assert too_long.returncode == 2 and "Traceback" not in too_long.stderr


def test_messages_page_back_with_tool_calls(env: dict[str, str]) -> None:
    _ok(env, "agents", "create", "pager", "--model", "openai/scripted")
    _ok(env, "send", "pager", "My name is Ann")
    _ok(env, "send", "pager", "how are you")
    everything = _ok(env, "messages", "pager", "--limit", "100")
    assert "user: " in everything and "-> core_memory_append(" in everything
    assert "<- core_memory_append ok" in everything
    page = _ok(env, "messages", "pager", "--limit", "2")
    assert page.count("\n") == 3 and "(earlier: --before message-" in page
    before = page.rsplit("--before ", 1)[1].strip(" )\n")
    older = _ok(env, "messages", "pager", "--limit", "2", "--before", before)
    assert older != page
    rows = json.loads(_ok(env, "messages", "pager", "--limit", "3", "--json"))
    assert len(rows) == 3 and rows[0]["created_at"] <= rows[-1]["created_at"]


def test_context_shows_tokens_by_section_against_the_window(env: dict[str, str]) -> None:
    _ok(env, "agents", "create", "ctx", "--persona", "P" * 400, "--model", "openai/scripted")
    _ok(env, "send", "ctx", "hello")
    view = json.loads(_ok(env, "context", "ctx", "--json"))
    assert view["context_window_size_max"] > 0
    assert view["num_tokens_core_memory"] >= 100  # the 400-character persona
    assert view["num_tokens_functions_definitions"] > 0 and view["num_tokens_messages"] > 0
    assert view["num_messages"] == len(view["messages"]) + 1
    parts = sum(
        view[k]
        for k in (
            "num_tokens_system",
            "num_tokens_core_memory",
            "num_tokens_external_memory_summary",
            "num_tokens_functions_definitions",
            "num_tokens_messages",
        )
    )
    # Sections are measured one by one; the whole request within a few per-message tokens.
    assert abs(view["context_window_size_current"] - parts) < 0.1 * parts + 40
    text = _ok(env, "context", "ctx")
    assert text.startswith("context window: ") and "core memory" in text
    assert "recall memory: " in text


def test_archival_memory_from_the_cli(env: dict[str, str]) -> None:
    _ok(env, "agents", "create", "arch", "--model", "openai/scripted")
    first = json.loads(
        _ok(
            env,
            "memory",
            "arch",
            "archival",
            "insert",
            "The launch is in May",
            "--tag",
            "plan",
            "--json",
        )
    )
    _ok(env, "memory", "arch", "archival", "insert", "Bob prefers tea over coffee")
    listed = _ok(env, "memory", "arch", "archival", "list")
    assert "[plan]: The launch is in May" in listed and "Bob prefers tea" in listed
    found = json.loads(_ok(env, "memory", "arch", "archival", "search", "launch May", "--json"))
    assert found[0]["passage"]["id"] == first["id"]
    assert _ok(env, "memory", "arch", "archival", "delete", first["id"]).startswith(
        "deleted 1 of 1"
    )
    assert "The launch" not in _ok(env, "memory", "arch", "archival", "list")
    gone = _memgrid(env, "memory", "arch", "archival", "delete", first["id"])
    assert gone.returncode == 1 and "deleted 0 of 1" in gone.stdout
    empty = _memgrid(env, "memory", "arch", "archival", "insert", "  ")
    assert empty.returncode == 2 and "empty" in empty.stderr
