"""The CLI as a user runs it: real subprocesses, real Redis, the scripted model over HTTP."""

from __future__ import annotations

import json

from tests.orchestrator._cli import memgrid as _memgrid


def test_create_send_correct_and_show_across_processes(env: dict[str, str]) -> None:
    made = _memgrid(
        env,
        "agents",
        "create",
        "memo",
        "--persona",
        "I am Memo.",
        "--model",
        "openai/scripted",
        "--json",
    )
    assert made.returncode == 0, made.stderr
    agent = json.loads(made.stdout)
    assert agent["name"] == "memo" and agent["model"] == "openai/scripted"

    sent = _memgrid(env, "send", "memo", "My name is Bob", "--json")
    assert sent.returncode == 0, sent.stderr
    response = json.loads(sent.stdout)
    types = [m["message_type"] for m in response["messages"]]
    assert types == [
        "tool_call_message",
        "tool_return_message",
        "assistant_message",
        "tool_return_message",
    ]
    assert response["stop_reason"]["stop_reason"] == "end_turn"
    assert response["usage"]["step_count"] == 2

    live = _memgrid(env, "send", "memo", "my name is actually Charles")
    assert live.returncode == 0, live.stderr
    assert "-> core_memory_replace(" in live.stdout
    assert "agent: Got it, I will remember that." in live.stdout

    shown = _memgrid(env, "agents", "show", "memo", "--json")
    blocks = {b["label"]: b["value"] for b in json.loads(shown.stdout)["blocks"]}
    assert blocks == {"persona": "I am Memo.", "human": "Name: Charles"}


def test_chat_reads_one_message_per_line(env: dict[str, str]) -> None:
    assert _memgrid(env, "agents", "create", "chatty", "--model", "openai/scripted").returncode == 0
    chat = _memgrid(env, "chat", "chatty", stdin="hello\n\nhow are you\n")
    assert chat.returncode == 0, chat.stderr
    assert chat.stdout.count("agent: You said:") == 2


def test_user_mistakes_are_one_line_errors(env: dict[str, str]) -> None:
    missing = _memgrid(env, "send", "nobody", "hi")
    assert missing.returncode == 2
    assert "no agent named or with id 'nobody'" in missing.stderr
    assert "Traceback" not in missing.stderr
    assert _memgrid(env, "agents", "create", "twin").returncode == 0
    twin = _memgrid(env, "agents", "create", "twin")
    assert twin.returncode == 2 and "already exists" in twin.stderr


def test_list_and_delete(env: dict[str, str]) -> None:
    for name in ("a1", "a2"):
        assert _memgrid(env, "agents", "create", name, "--tag", "team").returncode == 0
    listed = json.loads(_memgrid(env, "agents", "list", "--json").stdout)
    assert [a["name"] for a in listed] == ["a1", "a2"]
    assert _memgrid(env, "agents", "delete", "a1").returncode == 0
    listed = json.loads(_memgrid(env, "agents", "list", "--tag", "team", "--json").stdout)
    assert [a["name"] for a in listed] == ["a2"]


def test_a_failed_turn_exits_1_and_names_its_stop_reason(env: dict[str, str]) -> None:
    assert _memgrid(env, "agents", "create", "ghosty", "--model", "openai/scripted").returncode == 0
    sent = _memgrid(env, "send", "ghosty", "please call a ghost tool", "--json")
    assert sent.returncode == 1, (sent.stdout, sent.stderr)
    stop = json.loads(sent.stdout)["stop_reason"]
    assert stop["stop_reason"] == "invalid_tool_call"
    assert "invalid tool calls" in stop["detail"]
    assert "the turn failed (invalid_tool_call)" in sent.stderr
    assert "Traceback" not in sent.stderr
    live = _memgrid(env, "send", "ghosty", "please call a ghost tool")
    assert live.returncode == 1 and "[stop: invalid_tool_call" in live.stdout


def test_send_refuses_a_message_over_the_limit_in_one_line(env: dict[str, str]) -> None:
    assert _memgrid(env, "agents", "create", "small", "--model", "openai/scripted").returncode == 0
    limited = {**env, "MEMGRID_MAX_MESSAGE_BYTES": "1000"}
    sent = _memgrid(limited, "send", "small", "y" * 1001)
    assert sent.returncode == 2, sent.stdout
    assert "1000 bytes" in sent.stderr and "MEMGRID_MAX_MESSAGE_BYTES" in sent.stderr
    assert "Traceback" not in sent.stderr
    bad = _memgrid({**env, "MEMGRID_MAX_MESSAGE_BYTES": "lots"}, "send", "small", "hi")
    assert bad.returncode == 2 and "MEMGRID_MAX_MESSAGE_BYTES='lots'" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_agents_report_their_type(env: dict[str, str]) -> None:
    made = _memgrid(env, "agents", "create", "plain", "--type", "letta_v1_agent", "--json")
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["agent_type"] == "letta_v1_agent"
    assert "type: letta_v1_agent" in _memgrid(env, "agents", "show", "plain").stdout
    assert _memgrid(env, "agents", "create", "classic").returncode == 0
    shown = json.loads(_memgrid(env, "agents", "show", "classic", "--json").stdout)
    assert shown["agent_type"] == "memgpt_agent"
    chat = _memgrid(env, "send", "plain", "hello there")
    assert chat.returncode == 0, chat.stderr
    assert "agent: You said: hello there" in chat.stdout  # plain text is the reply
