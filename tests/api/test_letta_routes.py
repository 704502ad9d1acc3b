"""The official clients' methods for models, context, tags, a run's steps and cancelling,
each client in its own interpreter (see :mod:`tests.api._letta`)."""

from __future__ import annotations

from tests.api._letta import official_clients_test

SCRIPT_01 = """
import sys
from letta_client import CreateBlock, Letta, MessageCreate

client = Letta(base_url=sys.argv[1])
agent = client.agents.create(
    name="routes-01",
    memory_blocks=[CreateBlock(label="human", value="Name: Bob")],
    model="openai/gpt-4o-mini",
    embedding="hashing/384",
    tags=["course", "routes"],
)
models = client.models.list()
assert "openai/gpt-4o-mini" in [m.handle for m in models], models
assert all(m.context_window > 0 for m in models)
embedders = {e.handle: e for e in client.models.embeddings.list()}
assert embedders["local/all-MiniLM-L6-v2"].embedding_dim == 384, embedders
context = client.agents.context.retrieve(agent_id=agent.id)
assert context.context_window_size_max == agent.llm_config.context_window
assert "Name: Bob" in context.core_memory
assert client.tags.list() == ["course", "routes"]
assert client.tags.list(query_text="rou") == ["routes"]
hi = MessageCreate(role="user", content="hi there")
reply = client.agents.messages.create(agent_id=agent.id, messages=[hi])
run_id = reply.messages[0].run_id
steps = client.runs.steps.list(run_id=run_id)
assert [s.id for s in steps] == [reply.messages[0].step_id], steps
assert steps[0].run_id == run_id and steps[0].stop_reason == "end_turn"
assert client.agents.messages.cancel(agent_id=agent.id) == {}
answer = client.agents.messages.cancel(agent_id=agent.id, run_ids=[run_id])
assert answer == {run_id: "completed"}, answer
print("OK")
"""

SCRIPT_1X = """
import sys
from letta_client import Letta

client = Letta(base_url=sys.argv[1])
agent = client.agents.create(
    name="routes-1x",
    memory_blocks=[{"label": "human", "value": "Name: Bob"}],
    model="openai/gpt-4o-mini",
    embedding="hashing/384",
    tags=["course", "routes"],
)
models = client.models.list()
mini = [m for m in models if m.handle == "openai/gpt-4o-mini"]
assert mini and mini[0].max_context_window > 0, models
embedders = {e.handle: e for e in client.models.embeddings.list()}
assert embedders["hashing/384"].embedding_dim == 384, embedders
assert list(client.tags.list()) == ["course", "routes"]
reply = client.agents.messages.create(
    agent_id=agent.id, messages=[{"role": "user", "content": "hi there"}]
)
run_id = reply.messages[0].run_id
steps = list(client.runs.steps.list(run_id))
assert [s.id for s in steps] == [reply.messages[0].step_id], steps
assert steps[0].agent_id == agent.id and steps[0].total_tokens == reply.usage.total_tokens
assert client.agents.messages.cancel(agent.id) == {}
assert client.agents.messages.cancel(agent.id, run_ids=[run_id]) == {run_id: "completed"}
print("OK")
"""


test_routes_through_the_official_clients = official_clients_test(SCRIPT_01, SCRIPT_1X)
