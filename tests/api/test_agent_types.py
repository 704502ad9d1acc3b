"""Agent types over the REST API (issue #12): ``agent_type`` is accepted, reported and
honoured; a letta_v1 agent answers in plain text, calls tools, shows native reasoning, and
streams its text token by token as ``assistant_message`` frames, through both official clients.
"""

from __future__ import annotations

import httpx
import pytest

from agents.scripted import ChatRequest, Outcome, Policy, call, echo, text, tool_calls
from tests.api._letta import official_clients_test
from tests.api.conftest import make_agent, say_to, sse_frames

ROLL = "roll a d20 for me"
LONG = "a reply long enough to come in several pieces"


def letta_v1_policy(request: ChatRequest) -> Outcome:
    """A model playing a letta_v1 agent (plain text, a tool when asked, native reasoning);
    a MemGPT agent's requests (send_message offered) get the echo."""
    if request.offers("send_message"):
        return echo(request)
    if request.last_role == "tool":
        result = request.last_tool_result
        rolled = result.content if result is not None else "?"
        return text(f"The die says: {rolled}", reasoning="The tool answered; report it.")
    said = request.last_user_text or ""
    if said == ROLL and request.offers("roll_dice"):
        return tool_calls(call("roll_dice", sides=20), reasoning="They want a roll: use the die.")
    return text(f"You said: {said}", reasoning="Nothing to look up; answer directly.")


@pytest.fixture
def policy() -> Policy:
    return letta_v1_policy


async def test_agent_type_is_accepted_reported_and_checked(client: httpx.AsyncClient) -> None:
    plain = await make_agent(client, name="plain", agent_type="letta_v1_agent")
    assert plain["agent_type"] == "letta_v1_agent"
    assert "send_message" not in [t["name"] for t in plain["tools"]]
    again = (await client.get(f"/v1/agents/{plain['id']}")).json()
    assert again["agent_type"] == "letta_v1_agent"
    classic = await make_agent(client, name="classic")
    assert classic["agent_type"] == "memgpt_agent"  # the default when omitted
    assert "send_message" in [t["name"] for t in classic["tools"]]
    v2 = await make_agent(client, name="v2", agent_type="memgpt_v2_agent")
    assert {"send_message", "memory_rethink"} <= {t["name"] for t in v2["tools"]}
    assert "core_memory_append" not in [t["name"] for t in v2["tools"]]
    refused = await client.post("/v1/agents/", json={"name": "r", "agent_type": "react_agent"})
    assert 400 <= refused.status_code < 500, refused.text
    assert "agent_type" in refused.text and "letta_v1_agent" in refused.text


async def test_a_letta_v1_agent_answers_in_plain_text(client: httpx.AsyncClient) -> None:
    agent = await make_agent(client, agent_type="letta_v1_agent")
    reply = await say_to(client, agent["id"], "hi there")
    kinds = [(m["message_type"], m.get("content") or m.get("reasoning")) for m in reply["messages"]]
    assert kinds == [
        ("reasoning_message", "Nothing to look up; answer directly."),
        ("assistant_message", "You said: hi there"),
    ]
    assert reply["stop_reason"]["stop_reason"] == "end_turn"
    assert reply["usage"]["step_count"] == 1


async def test_a_letta_v1_agent_streams_its_text_as_the_reply(client: httpx.AsyncClient) -> None:
    agent = await make_agent(client, agent_type="letta_v1_agent")
    body = {"messages": [{"role": "user", "content": LONG}], "stream_tokens": True}
    frames = await sse_frames(client, f"/v1/agents/{agent['id']}/messages/stream", body)
    said = [f for f in frames if isinstance(f, dict) and f["message_type"] == "assistant_message"]
    thought = [
        f for f in frames if isinstance(f, dict) and f["message_type"] == "reasoning_message"
    ]
    assert len(said) > 1 and len({f["id"] for f in said}) == 1, said
    assert "".join(f["content"] for f in said) == f"You said: {LONG}"
    assert "".join(f["reasoning"] for f in thought) == "Nothing to look up; answer directly."
    assert {f["id"] for f in thought} == {said[0]["id"]}  # one model answer, one message
    assert [f["message_type"] for f in frames[-3:-1]] == ["stop_reason", "usage_statistics"]


async def test_a_letta_v1_agents_text_stays_the_assistant_message_in_every_view(
    client: httpx.AsyncClient,
) -> None:
    """use_assistant_message=false turns send_message calls into tool calls; a letta_v1
    agent's text is no call, so it stays an assistant_message (as in Letta)."""
    agent = await make_agent(client, agent_type="letta_v1_agent")
    off = {"use_assistant_message": False}
    sent = await say_to(client, agent["id"], "hi there", **off)
    kinds = [(m["message_type"], m.get("content") or m.get("reasoning")) for m in sent["messages"]]
    assert kinds == [
        ("reasoning_message", "Nothing to look up; answer directly."),
        ("assistant_message", "You said: hi there"),
    ]
    body = {"messages": [{"role": "user", "content": "again"}], "stream_tokens": True, **off}
    frames = await sse_frames(client, f"/v1/agents/{agent['id']}/messages/stream", body)
    shown = [f for f in frames if isinstance(f, dict) and "message_type" in f]
    said = [f["content"] for f in shown if f["message_type"] == "assistant_message"]
    assert "".join(said) == "You said: again", shown
    assert "tool_call_message" not in [f["message_type"] for f in shown]
    url = f"/v1/agents/{agent['id']}/messages"
    listed = (await client.get(url, params={"use_assistant_message": "false"})).json()
    replies = [m["content"] for m in listed if m["message_type"] == "assistant_message"]
    assert replies == ["You said: hi there", "You said: again"], listed
    assert "tool_call_message" not in [m["message_type"] for m in listed]


# How both scripts start: a letta_v1_agent made with the client; {imports}: more names to import.
_START = """
import sys
from letta_client import Letta{imports}

client = Letta(base_url=sys.argv[1])
agent = client.agents.create(
    name="v1-agent", agent_type="letta_v1_agent", model="openai/gpt-4o-mini",
    embedding="hashing/384",
)
assert agent.agent_type == "letta_v1_agent", agent.agent_type
"""
# What both check of the reply to the roll: the tool ran, then the agent answered.
_ROLLED = """kinds = [m.message_type for m in reply.messages]
assert kinds == [
    "reasoning_message", "tool_call_message", "tool_return_message",
    "reasoning_message", "assistant_message",
], kinds
assert reply.messages[1].tool_call.name == "roll_dice"
assert "rolled on a d20" in reply.messages[2].tool_return
assert reply.messages[-1].content.startswith("The die says:"), reply.messages[-1]
"""

SCRIPT_01 = (
    _START.format(imports=", MessageCreate")
    + '''assert "send_message" not in [t.name for t in agent.tools]


def roll_dice(sides: int = 6) -> str:
    """Roll a die.

    Args:
        sides (int): number of sides.
    """
    return f"rolled on a d{sides}"


tool = client.tools.upsert_from_function(func=roll_dice)
client.agents.tools.attach(agent_id=agent.id, tool_id=tool.id)
roll = MessageCreate(role="user", content=sys.argv[2])
reply = client.agents.messages.create(agent_id=agent.id, messages=[roll])
'''
    + _ROLLED
    + """assert reply.stop_reason.stop_reason == "end_turn" and reply.usage.step_count == 2
long = MessageCreate(role="user", content=sys.argv[3])
chunks = list(
    client.agents.messages.create_stream(agent_id=agent.id, messages=[long], stream_tokens=True)
)
said = [c for c in chunks if c.message_type == "assistant_message"]
assert len(said) > 1 and len({c.id for c in said}) == 1, said
assert "".join(c.content for c in said) == "You said: " + sys.argv[3], said
stored = [m for m in client.agents.messages.list(agent_id=agent.id) if m.id == said[0].id]
assert [m.message_type for m in stored] == ["reasoning_message", "assistant_message"], stored
assert stored[1].content == "You said: " + sys.argv[3], stored
print("OK")
"""
)

SCRIPT_1X = (
    _START.format(imports="")
    + """assert client.agents.retrieve(agent.id).agent_type == "letta_v1_agent"
source = (
    "def roll_dice(sides: int = 6) -> str:\\n"
    "    \\"\\"\\"Roll a die.\\n\\n    Args:\\n"
    "        sides (int): number of sides.\\n    \\"\\"\\"\\n"
    "    return f'rolled on a d{sides}'\\n"
)
tool = client.tools.upsert(source_code=source)
client.agents.tools.attach(tool.id, agent_id=agent.id)
reply = client.agents.messages.create(
    agent_id=agent.id, messages=[{"role": "user", "content": sys.argv[2]}]
)
"""
    + _ROLLED
    + """assert reply.stop_reason.stop_reason == "end_turn"
chunks = list(
    client.agents.messages.stream(
        agent_id=agent.id, messages=[{"role": "user", "content": sys.argv[3]}], stream_tokens=True
    )
)
said = [c for c in chunks if c.message_type == "assistant_message"]
assert len(said) > 1 and len({c.id for c in said}) == 1, said
assert "".join(c.content for c in said) == "You said: " + sys.argv[3], said
thought = [c for c in chunks if c.message_type == "reasoning_message"]
assert "".join(c.reasoning for c in thought) == "Nothing to look up; answer directly."
assert [c.message_type for c in chunks][-2:] == ["stop_reason", "usage_statistics"]
print("OK")
"""
)


test_letta_v1_agent_through_the_official_clients = official_clients_test(
    SCRIPT_01, SCRIPT_1X, ROLL, LONG
)
