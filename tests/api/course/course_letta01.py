"""The course's client code for letta-client 0.1.x, run against `memgrid up`.

Copied from ../shared/seeds/001_8bab5f61a32cdffa.txt in the course's order, unchanged but
for three things, each marked ``# memgrid:``:

- the server's address comes from ``LETTA_BASE_URL`` (default the course's
  ``http://localhost:8283``), so tests can serve on a free port;
- inside the task-queue tools, which run in memgrid's tool sandbox and call the REST API
  back, the address comes from ``MEMGRID_API_URL`` (which ``memgrid up`` gives the sandbox),
  with the course's address as the default;
- ``print_message`` is the notebook helper the course imports, from ``course_helpers.py``.

Lines marked ``# check:`` are not the course's: they assert what the course shows in its
screenshots, so that a run that prints the wrong thing fails. Run it in a folder holding
``task_queue_system_prompt.txt``, ``handbook.pdf`` and ``resumes/`` (the course's files).
"""
# ruff: noqa: RET501, SIM115, UP015, B018, F841

import json
import os

from course_helpers import print_message  # memgrid: the course's notebook helper
from letta_client import Letta

# --- Letta tool to build the MemGPT agent --------------------------------------------------

client = Letta(
    base_url=os.environ.get("LETTA_BASE_URL", "http://localhost:8283")
)  # memgrid: address

agent_state = client.agents.create(
    name="simple_agent",
    memory_blocks=[
        {
            "label": "human",
            "value": "My name is Shilpa",
            "limit": 10000,  # character limit
        },
        {"label": "persona", "value": "You are a helpful assistant and you always use emojis"},
    ],
    model="openai/gpt-4o-mini-2024-07-18",
    embedding="openai/text-embedding-3-small",
)
# send a message to the agent
response = client.agents.messages.create(
    agent_id=agent_state.id, messages=[{"role": "user", "content": "hows it going????"}]
)
# if we want to print the messages
for message in response.messages:
    print_message(message)
# if we want to print the usage stats
print(response.usage.completion_tokens)
print(response.usage.prompt_tokens)
print(response.usage.step_count)
assert response.usage.step_count >= 1 and response.usage.prompt_tokens > 0  # check:

# send a message to the agent
response = client.agents.messages.create(
    agent_id=agent_state.id, messages=[{"role": "user", "content": "my name actually is Sid"}]
)
# if we want to print the messages
for message in response.messages:
    print_message(message)
human = client.agents.blocks.retrieve(agent_id=agent_state.id, block_label="human").value
assert human == "My name is Sid", human  # check:

response = client.agents.messages.create(
    agent_id=agent_state.id,
    messages=[
        {
            "role": "user",
            "content": "Save the information that 'shilpa loves machine learning' to archival",
        }
    ],
)
# if we want to print the messages
for message in response.messages:
    print_message(message)
passages = client.agents.passages.list(agent_id=agent_state.id)  # check: "what is stored"
assert [p.text for p in passages] == ["shilpa loves machine learning"], passages  # check:

client.agents.passages.create(
    agent_id=agent_state.id,
    text="Shilpa's loves Hersheys",
)
# send a message to the agent
response = client.agents.messages.create(
    agent_id=agent_state.id,
    messages=[{"role": "user", "content": "What chocolates do I like? Search archival."}],
)
for message in response.messages:
    print_message(message)
said = [m.content for m in response.messages if m.message_type == "assistant_message"]  # check:
assert any("Hersheys" in s for s in said), said  # check:
calls = [m.tool_call.name for m in response.messages if m.message_type == "tool_call_message"]
assert "archival_memory_search" in calls, calls  # check:

# --- How is Core memory Designed? -----------------------------------------------------------

agent_state = client.agents.create(
    memory_blocks=[
        {"label": "human", "value": "The human's name is Winnie the Pooh."},
        {"label": "persona", "value": "My name is Rabbit, the all-knowing sentient AI."},
    ],
    model="openai/gpt-4o-mini",
    embedding="openai/text-embedding-3-small",
)
blocks = client.agents.blocks.list(
    agent_id=agent_state.id,
)
print(blocks)
assert sorted(b.label for b in blocks) == ["human", "persona"], blocks  # check: 2 blocks
# check: "retrieve the block using block ID or the label"
assert client.blocks.retrieve(block_id=blocks[0].id).value == blocks[0].value
assert client.agents.blocks.retrieve(agent_id=agent_state.id, block_label="persona").value == (
    "My name is Rabbit, the all-knowing sentient AI."
)


def get_agent_id(agent_state: "AgentState"):  # noqa: F821 (the course's annotation)
    """
    Query your agent ID field
    """
    return agent_state.id


get_id_tool = client.tools.upsert_from_function(func=get_agent_id)
agent_state = client.agents.create(
    memory_blocks=[],
    model="openai/gpt-4o-mini",
    embedding="openai/text-embedding-3-small",
    tool_ids=[get_id_tool.id],
)
response_stream = client.agents.messages.create_stream(
    agent_id=agent_state.id, messages=[{"role": "user", "content": "What is your agent id?"}]
)
streamed = []  # check:
for chunk in response_stream:
    print_message(chunk)
    streamed.append(chunk)  # check:
said = [c.content for c in streamed if c.message_type == "assistant_message"]  # check:
assert any(agent_state.id in s for s in said), said  # check: the tool saw its agent_state
assert streamed[-1].message_type == "usage_statistics", streamed[-1]  # check:


def task_queue_push(agent_state: "AgentState", task_description: str):  # noqa: F821
    """
    Push to a task queue stored in core memory.

    Args:
        task_description (str): A description of the next task you must accomplish.

    Returns:
        Optional[str]: None is always returned as this function
        does not produce a response.
    """
    import json
    import os  # memgrid: for MEMGRID_API_URL

    from letta_client import Letta

    client = Letta(
        base_url=os.environ.get("MEMGRID_API_URL", "http://localhost:8283")
    )  # memgrid: address
    block = client.agents.blocks.retrieve(
        agent_id=agent_state.id,
        block_label="tasks",
    )
    tasks = json.loads(block.value)
    tasks.append(task_description)
    # update the block value
    client.agents.blocks.modify(
        agent_id=agent_state.id, value=json.dumps(tasks), block_label="tasks"
    )
    return None


def task_queue_pop(agent_state: "AgentState"):  # noqa: F821
    """
    Get the next task from the task queue

    Returns:
        Optional[str]: Remaining tasks in the queue
    """
    import json
    import os  # memgrid: for MEMGRID_API_URL

    from letta_client import Letta

    client = Letta(
        base_url=os.environ.get("MEMGRID_API_URL", "http://localhost:8283")
    )  # memgrid: address
    # get the block
    block = client.agents.blocks.retrieve(
        agent_id=agent_state.id,
        block_label="tasks",
    )
    tasks = json.loads(block.value)
    if len(tasks) == 0:
        return None
    task = tasks[0]
    # update the block value
    remaining_tasks = json.dumps(tasks[1:])
    client.agents.blocks.modify(agent_id=agent_state.id, value=remaining_tasks, block_label="tasks")
    return f"Remaining tasks {remaining_tasks}"


task_queue_pop_tool = client.tools.upsert_from_function(func=task_queue_pop)
task_queue_push_tool = client.tools.upsert_from_function(func=task_queue_push)
task_agent = client.agents.create(
    system=open("task_queue_system_prompt.txt", "r").read(),
    memory_blocks=[{"label": "tasks", "value": json.dumps([])}],
    model="openai/gpt-4o-mini-2024-07-18",
    embedding="openai/text-embedding-3-small",
    tool_ids=[task_queue_pop_tool.id, task_queue_push_tool.id],
    include_base_tools=False,
    tools=["send_message"],
)
response_stream = client.agents.messages.create_stream(
    agent_id=task_agent.id,
    messages=[
        {
            "role": "user",
            "content": "Add 'start calling me Mickey' and "
            + "'tell me a haiku about my name' as two seperate tasks.",
        }
    ],
)
for chunk in response_stream:
    print_message(chunk)
# check: "We can also retrieve the task list"
tasks = client.agents.blocks.retrieve(agent_id=task_agent.id, block_label="tasks").value
assert json.loads(tasks) == ["start calling me Mickey", "tell me a haiku about my name"], tasks

# --- How do we use External Memory with an example of RAG? ----------------------------------

source = client.sources.create(name="employee_handbook", embedding="openai/text-embedding-3-small")
source
job = client.sources.files.upload(source_id=source.id, file=open("handbook.pdf", "rb"))
import time  # noqa: E402 (the course imports here)

from letta_client import JobStatus  # noqa: E402, F401 (the course imports it)

while job.status != "completed":
    job = client.jobs.retrieve(job.id)
    print(job.status)
    time.sleep(1)
agent_state = client.agents.create(
    memory_blocks=[
        {"label": "human", "value": "My name is Sarah"},
        {"label": "persona", "value": "You are a helpful assistant"},
    ],
    model="openai/gpt-4o-mini-2024-07-18",
    embedding="openai/text-embedding-3-small",
)
agent_state = client.agents.sources.attach(agent_id=agent_state.id, source_id=source.id)
# check: "Checking the data attached to the agent"
assert [s.name for s in client.agents.sources.list(agent_id=agent_state.id)] == [
    "employee_handbook"
]
assert any("vacation" in p.text for p in client.agents.passages.list(agent_id=agent_state.id))
response = client.agents.messages.create(
    agent_id=agent_state.id,
    messages=[{"role": "user", "content": "Search archival for our company's vacation policies"}],
)
for message in response.messages:
    print_message(message)
said = [m.content for m in response.messages if m.message_type == "assistant_message"]  # check:
assert any("25 days of paid vacation" in s for s in said), said  # check:

# --- How can we run this Service and share memory across the agents? ------------------------

company_description = (
    "The company is called AgentOS "
    + "and is building AI tools to make it easier to create "
    + "and deploy LLM agents."
)
company_block = client.blocks.create(
    value=company_description,
    label="company",
    limit=10000,  # character limit
)


def draft_candidate_email(content: str):
    """
    Draft an email to reach out to a candidate.

    Args:
        content (str): Content of the email
    """
    return f"Here is a draft email: {content}"


draft_email_tool = client.tools.upsert_from_function(func=draft_candidate_email)
outreach_persona = (
    "You are responsible for drafting emails "
    "on behalf of a company with the draft_candidate_email tool. "
    "Candidates to email will be messaged to you. "
)
outreach_agent = client.agents.create(
    name="outreach_agent",
    memory_blocks=[{"label": "persona", "value": outreach_persona}],
    model="openai/gpt-4o-mini-2024-07-18",
    embedding="openai/text-embedding-ada-002",
    tools=[draft_email_tool.name],
    block_ids=[company_block.id],
)


def reject(candidate_name: str):
    """
    Reject a candidate.

    Args:
        candidate_name (str): The name of the candidate
    """
    return


reject_tool = client.tools.upsert_from_function(func=reject)
skills = "Front-end (React, Typescript) or software engineering skills"
eval_persona = (
    f"You are responsible for evaluating candidates. "
    f"Ideal candidates have skills: {skills}. "
    "Reject bad candidates with your reject tool. "
    f"Send strong candidates to agent ID {outreach_agent.id}. "
    "You must either reject or send candidates to the other agent. "
)
eval_agent = client.agents.create(
    name="eval_agent",
    memory_blocks=[{"label": "persona", "value": eval_persona}],
    model="openai/gpt-4o-mini-2024-07-18",
    embedding="openai/text-embedding-ada-002",
    tool_ids=[reject_tool.id],
    tools=["send_message_to_agent_and_wait_for_reply"],
    include_base_tools=False,
    block_ids=[company_block.id],
    tool_rules=[{"type": "exit_loop", "tool_name": "send_message_to_agent_and_wait_for_reply"}],
)
# check: "As you see the 2 tools are created for the agent"
assert sorted(t.name for t in eval_agent.tools) == [
    "reject",
    "send_message_to_agent_and_wait_for_reply",
], eval_agent.tools
resume = open("resumes/tony_stark.txt", "r").read()
response = client.agents.messages.create_stream(
    agent_id=eval_agent.id, messages=[{"role": "user", "content": f"Evaluate: {resume}"}]
)
streamed = []  # check:
for message in response:
    print_message(message)
    streamed.append(message)  # check:
returns = [m.tool_return for m in streamed if m.message_type == "tool_return_message"]  # check:
assert any("I drafted an email to Tony Stark" in r for r in returns), returns  # check:
drafted = client.agents.messages.list(agent_id=outreach_agent.id)  # check:
assert any(  # check: the outreach agent wrote the email with the company from the shared block
    m.message_type == "tool_call_message"
    and m.tool_call.name == "draft_candidate_email"
    and "AgentOS" in m.tool_call.arguments
    for m in drafted
), drafted
# check: not in the course's text: a weak candidate is rejected with the reject tool
response = client.agents.messages.create_stream(
    agent_id=eval_agent.id,
    messages=[
        {"role": "user", "content": "Evaluate: " + open("resumes/spongebob_squarepants.txt").read()}
    ],
)
calls = [m.tool_call.name for m in response if m.message_type == "tool_call_message"]
assert calls == ["reject"], calls

response = client.agents.messages.create_stream(
    agent_id=outreach_agent.id,
    messages=[{"role": "user", "content": "The company has rebranded to Letta"}],
)
for message in response:
    print_message(message)
# check: the shared block changed, for both agents
company = client.blocks.retrieve(block_id=company_block.id).value
assert company.startswith("The company is called Letta "), company
seen_by_eval = client.agents.blocks.retrieve(agent_id=eval_agent.id, block_label="company").value
assert seen_by_eval == company, seen_by_eval
print("OK")
