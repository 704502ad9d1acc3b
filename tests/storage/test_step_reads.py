"""Everything a step reads, in one round trip, matches what the stores return one by one."""

from __future__ import annotations

import redis.asyncio as aioredis

from storage.agents import AgentStore
from storage.blocks import BlockStore
from storage.messages import MessageLog
from storage.records import Agent, Block, Message, Tool, new_id
from storage.step_reads import read_step
from storage.tools import ToolStore


async def test_read_step_matches_the_stores(redis_client: aioredis.Redis) -> None:
    blocks, tools, log = BlockStore(redis_client), ToolStore(redis_client), MessageLog(redis_client)
    human = await blocks.create(Block(id=new_id("block"), label="human", value="Ann"))
    persona = await blocks.create(Block(id=new_id("block"), label="persona", value="helper"))
    await tools.upsert(
        Tool(id=new_id("tool"), name="roll_dice", source_code="def roll_dice(): ...")
    )
    agent = Agent(
        id=new_id("agent"),
        name="reader",
        model="openai/scripted",
        system="s",
        embedding="hashing/384",
        # a block and a message that are gone are skipped, in the order asked
        block_ids=[persona.id, "block-gone", human.id],
        tools=["send_message", "roll_dice", "not_a_tool"],
    )
    messages = [
        Message(id=new_id("message"), agent_id=agent.id, role="user", seq=n, content=f"m{n}")
        for n in (1, 2, 3)
    ]
    await log.append(messages)
    agent.message_ids = [messages[2].id, "message-gone", messages[0].id]
    await AgentStore(redis_client).create(agent)

    reads = await read_step(redis_client, agent, next_seq=True)
    assert [b.label for b in reads.blocks] == ["persona", "human"]
    assert list(reads.tools) == ["roll_dice"]
    assert [m.content for m in reads.messages] == ["m3", "m1"]
    assert reads.message_count == 3 and reads.next_seq == 4

    empty = Agent(
        id=new_id("agent"), name="empty", model="openai/scripted", system="s", embedding="e"
    )
    reads = await read_step(redis_client, empty, next_seq=True)
    assert (reads.blocks, reads.tools, reads.messages) == ([], {}, [])
    assert reads.message_count == 0 and reads.next_seq == 1
    assert (await read_step(redis_client, empty)).next_seq == 0  # not asked for
