"""Everything one step of an agent reads, in one round trip.

A step needs the agent's blocks, its custom tools, its in-context messages, the size of its
log and the archives attached to it (and, on a turn's first step, the next message seq). Read
one by one these are six round trips, each paying the client's per-call cost; here they go in
one pipeline (plus one MGET for the tool records when the agent has custom tools).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from storage import keys
from storage._util import texts
from storage.messages import MessageLog
from storage.records import Agent, Block, Message, Tool, decode
from storage.tools import ToolStore

__all__ = ("StepReads", "read_step")


class StepReads(msgspec.Struct, kw_only=True):
    """What :func:`read_step` found. Missing blocks, tools and messages are left out."""

    blocks: list[Block]
    tools: dict[str, Tool]
    messages: list[Message]
    message_count: int
    next_seq: int = 0  # 0 when not asked for
    archive_ids: list[str] = msgspec.field(default_factory=list)
    extra: list[Any] = msgspec.field(default_factory=list)  # the replies to ``extra``


async def read_step(
    redis: aioredis.Redis,
    agent: Agent,
    *,
    next_seq: bool = False,
    extra: Sequence[Sequence[Any]] = (),
) -> StepReads:
    """The blocks, custom tools (by name) and in-context messages of ``agent``, the number of
    messages in its log and, with ``next_seq``, one more than the highest stored seq.
    ``extra``: more read commands for the same round trip (the caller's own reads of the
    agent's keys); their replies come back in order in ``StepReads.extra``."""
    messages_key = keys.agent_messages(agent.id)
    # Blocks have hash slots of their own: one MGET on one Redis, one GET each on a cluster
    # (whose pipelines send each command to its slot's node, but no MGET across slots).
    per_block = isinstance(redis, RedisCluster)
    async with redis.pipeline(transaction=False) as pipe:
        if per_block:
            for b in agent.block_ids:
                pipe.get(keys.block(b))
        elif agent.block_ids:
            pipe.execute_command("MGET", *(keys.block(b) for b in agent.block_ids))
        if agent.tools:
            pipe.hmget(keys.tool_names(), agent.tools)
        if agent.message_ids:  # one agent's: one slot
            pipe.execute_command("MGET", *(keys.message(agent.id, m) for m in agent.message_ids))
        pipe.zcard(messages_key)
        pipe.smembers(keys.agent_archives(agent.id))
        if next_seq:
            pipe.zrevrange(messages_key, 0, 0, withscores=True)
        for command in extra:
            pipe.execute_command(*command)
        replies = list(await pipe.execute())
    extras = replies[len(replies) - len(extra) :]
    del replies[len(replies) - len(extra) :]
    top = replies.pop() if next_seq else []
    archive_ids = sorted(texts(replies.pop()))
    count = int(replies.pop())
    raw_messages = replies.pop() if agent.message_ids else []
    tool_ids = replies.pop() if agent.tools else []
    if per_block:
        raw_blocks = replies[: len(agent.block_ids)]
    else:
        raw_blocks = replies.pop() if agent.block_ids else []
    return StepReads(
        blocks=[decode(Block, raw) for raw in raw_blocks if raw is not None],
        tools=await ToolStore(redis).by_ids(tool_ids),
        messages=[decode(Message, raw) for raw in raw_messages if raw is not None],
        message_count=count,
        next_seq=MessageLog.seq_after(top) if next_seq else 0,
        archive_ids=archive_ids,
        extra=extras,
    )
