"""Archives through the official clients (issue #12, item 4), each in its own interpreter.

letta-client 1.x has the whole surface (``client.archives``, ``.passages``,
``client.agents.archives``); 0.1.x only lists, creates and modifies archives. The 1.x script
also has the scripted model call ``archival_memory_search`` and find an archive's passage.
"""

from __future__ import annotations

import pytest

from agents.scripted import Policy
from tests._util import archival_policy
from tests.api._letta import official_clients_test

SCRIPT_01 = """
import sys
from letta_client import Letta

client = Letta(base_url=sys.argv[1])
made = client.archives.create_archive(name="handbook", description="facts")
assert made.id.startswith("archive-") and made.name == "handbook", made
renamed = client.archives.modify_archive(made.id, name="manual")
assert renamed.name == "manual" and renamed.description == "facts", renamed
assert [a.id for a in client.archives.list_archives(name="manual")] == [made.id]
print("OK")
"""

SCRIPT_1X = """
import sys
from letta_client import Letta

client = Letta(base_url=sys.argv[1])
archive = client.archives.create(name="handbook", embedding="hashing/384")
assert archive.embedding_config.embedding_dim == 384, archive
assert client.archives.retrieve(archive.id).name == "handbook"
assert client.archives.update(archive.id, description="facts").description == "facts"
assert [a.id for a in client.archives.list()] == [archive.id]
fact = client.archives.passages.create(archive.id, text="Project Nimbus launch code is 7731.")
assert fact.archive_id == archive.id, fact
many = client.archives.passages.create_many(
    archive.id, passages=[{"text": "The cafeteria opens at 8."}, {"text": "scratch"}]
)
client.archives.passages.delete(many[1].id, archive_id=archive.id)
agent = client.agents.create(
    name="reader",
    memory_blocks=[{"label": "human", "value": "Name: Bob"}],
    model="openai/gpt-4o-mini",
    embedding="hashing/384",
)
client.agents.archives.attach(archive.id, agent_id=agent.id)
assert [a.id for a in client.archives.list(agent_id=agent.id)] == [archive.id]
found = client.agents.passages.search(agent_id=agent.id, query="Nimbus launch code")
assert found.results[0].content == "Project Nimbus launch code is 7731.", found
ask = [{"role": "user", "content": "recall: launch code of project Nimbus"}]
reply = client.agents.messages.create(agent_id=agent.id, messages=ask)
returns = [m for m in reply.messages if m.message_type == "tool_return_message"]
assert "7731" in returns[0].tool_return, reply
client.agents.archives.detach(archive.id, agent_id=agent.id)
assert client.archives.list(agent_id=agent.id).items == []
client.archives.delete(archive.id)
assert client.archives.list().items == []
print("OK")
"""


@pytest.fixture
def policy() -> Policy:
    return archival_policy


test_archives_through_the_official_client = official_clients_test(SCRIPT_01, SCRIPT_1X)
