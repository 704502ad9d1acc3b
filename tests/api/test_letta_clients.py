"""The official clients against a live server, each in its own interpreter.

letta-client is not a dependency of memgrid: ``make test`` installs each major version into a
throwaway virtualenv and names their interpreters in ``MEMGRID_TEST_LETTA01_PYTHON``
(letta-client 0.1.x) and ``MEMGRID_TEST_LETTA1X_PYTHON`` (1.x); see :mod:`tests.api._letta`.
Each script walks the API surface the course touches and fails on the first response its
models reject. The course's own code runs in :mod:`tests.api.test_course`.
"""

from __future__ import annotations

from tests.api._letta import official_clients_test

SCRIPT_01 = '''
import sys, time
from letta_client import CreateBlock, Letta, MessageCreate

client = Letta(base_url=sys.argv[1])
assert client.health.check().status == "ok"
agent = client.agents.create(
    name="course-agent",
    memory_blocks=[CreateBlock(label="human", value="Name: Bob")],
    model="openai/gpt-4o-mini",
    embedding="hashing/384",
)
hi = MessageCreate(role="user", content="hi there")
reply = client.agents.messages.create(agent_id=agent.id, messages=[hi])
assert reply.messages[0].content == "hi there", reply
assert reply.stop_reason.stop_reason == "end_turn"
long = MessageCreate(role="user", content="a reply long enough to come in several pieces")
chunks = list(
    client.agents.messages.create_stream(agent_id=agent.id, messages=[long], stream_tokens=True)
)
kinds = [chunk.message_type for chunk in chunks]
assert kinds[-2:] == ["stop_reason", "usage_statistics"], kinds
said = [c for c in chunks if c.message_type == "assistant_message"]
assert len(said) > 1 and len({c.id for c in said}) == 1, said
stored = [m for m in client.agents.messages.list(agent_id=agent.id) if m.id == said[0].id]
assert "".join(c.content for c in said) == stored[0].content == long.content, (said, stored)
assert [a.id for a in client.agents.list()] == [agent.id]
assert client.agents.modify(agent_id=agent.id, name="renamed").name == "renamed"
human = client.agents.blocks.modify(agent_id=agent.id, block_label="human", value="Alice")
assert human.value == "Alice"
assert [b.label for b in client.agents.blocks.list(agent_id=agent.id)] == ["human"]
block = client.blocks.create(label="shared", value="info")
assert [b.id for b in client.blocks.list(label_search="SHAR", value_search="inf")] == [block.id]
attached = client.agents.blocks.attach(agent_id=agent.id, block_id=block.id)
assert [b.label for b in attached.memory.blocks] == ["human", "shared"]
client.agents.blocks.detach(agent_id=agent.id, block_id=block.id)
client.blocks.delete(block_id=block.id)


def roll_dice(sides: int = 6) -> str:
    """Roll a die.

    Args:
        sides (int): number of sides.
    """
    return str(sides)


tool = client.tools.upsert_from_function(func=roll_dice)
assert client.tools.retrieve(tool_id=tool.id).name == "roll_dice"
with_tool = client.agents.tools.attach(agent_id=agent.id, tool_id=tool.id)
assert "roll_dice" in [t.name for t in with_tool.tools]
passage = client.agents.passages.create(agent_id=agent.id, text="The sky is blue")[0]
assert [p.text for p in client.agents.passages.list(agent_id=agent.id)] == ["The sky is blue"]
run = client.agents.messages.create_async(agent_id=agent.id, messages=[hi])
for _ in range(100):
    if client.runs.retrieve(run_id=run.id).status == "completed":
        break
    time.sleep(0.05)
assert client.jobs.retrieve(job_id=run.id).status == "completed"
assert run.id in [r.id for r in client.runs.list()]
assert client.agents.messages.list(agent_id=agent.id, limit=5)
client.agents.passages.delete(agent_id=agent.id, memory_id=passage.id)
client.agents.delete(agent_id=agent.id)
print("OK")
'''

SCRIPT_1X = """
import sys, time
from letta_client import Letta

client = Letta(base_url=sys.argv[1])
assert client.health().status == "ok"
agent = client.agents.create(
    name="agent-1x",
    memory_blocks=[{"label": "human", "value": "Name: Bob"}],
    model="openai/gpt-4o-mini",
    embedding="hashing/384",
)
hi = [{"role": "user", "content": "hi there"}]
reply = client.agents.messages.create(agent_id=agent.id, messages=hi)
assert reply.messages[0].content == "hi there", reply
assert reply.stop_reason.stop_reason == "end_turn"
assert client.agents.messages.create(agent_id=agent.id, input="via input").messages
kinds = [c.message_type for c in client.agents.messages.stream(agent_id=agent.id, messages=hi)]
assert kinds[-2:] == ["stop_reason", "usage_statistics"], kinds
long = [{"role": "user", "content": "a reply long enough to come in several pieces"}]
chunks = list(
    client.agents.messages.stream(agent_id=agent.id, messages=long, stream_tokens=True)
)
assert [c.message_type for c in chunks][-2:] == ["stop_reason", "usage_statistics"], chunks
said = [c for c in chunks if c.message_type == "assistant_message"]
assert len(said) > 1 and len({c.id for c in said}) == 1, said
stored = [
    m for m in client.agents.messages.list(agent_id=agent.id, order="desc", limit=10)
    if m.id == said[0].id
]
assert "".join(c.content for c in said) == stored[0].content == long[0]["content"], stored
assert [a.id for a in client.agents.list()] == [agent.id]
assert client.agents.update(agent_id=agent.id, name="renamed").name == "renamed"
assert [b.label for b in client.agents.blocks.list(agent_id=agent.id)] == ["human"]
human = client.agents.blocks.update("human", agent_id=agent.id, value="Alice")
assert human.value == "Alice"
block = client.blocks.create(label="shared", value="info")
assert [b.id for b in client.blocks.list(label_search="SHAR", value_search="inf")] == [block.id]
attached = client.agents.blocks.attach(block.id, agent_id=agent.id)
assert [b.label for b in attached.blocks] == ["human", "shared"]
client.agents.blocks.detach(block.id, agent_id=agent.id)
client.blocks.delete(block.id)
source = "def roll_dice(sides: int = 6) -> str:\\n    'Roll a die.'\\n    return str(sides)\\n"
tool = client.tools.upsert(source_code=source)
assert client.tools.retrieve(tool.id).name == "roll_dice"
assert "roll_dice" in [t.name for t in client.tools.list()]
client.agents.tools.attach(tool.id, agent_id=agent.id)
passage = client.agents.passages.create(agent_id=agent.id, text="The sky is blue")[0]
assert [p.text for p in client.agents.passages.list(agent_id=agent.id)] == ["The sky is blue"]
found = client.agents.passages.search(agent_id=agent.id, query="sky")
assert found.results[0].content == "The sky is blue"
run = client.agents.messages.create_async(agent_id=agent.id, messages=hi)
for _ in range(100):
    if client.runs.retrieve(run.id).status == "completed":
        break
    time.sleep(0.05)
assert client.runs.retrieve(run.id).agent_id == agent.id
assert run.id in [r.id for r in client.runs.list(limit=5)]  # auto-paged to the end
every = list(client.agents.messages.list(agent_id=agent.id, limit=3, order="asc"))
assert len(every) > 3  # auto-paged with after= cursors, and it ends
client.agents.passages.delete(passage.id, agent_id=agent.id)
client.agents.delete(agent.id)
print("OK")
"""


test_letta_client = official_clients_test(SCRIPT_01, SCRIPT_1X)
