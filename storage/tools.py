"""Tool records in Redis, unique by name (agents refer to tools by name)."""

from __future__ import annotations

import builtins
from collections.abc import Sequence

import msgspec
import redis.asyncio as aioredis

from storage import keys
from storage._util import fetch, fetch_many, text, texts
from storage.records import Tool, decode, encode

__all__ = ("ToolStore",)


class ToolStore:
    """Create-or-replace by name, get by id or name, list, delete."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis

    async def upsert(self, tool: Tool) -> Tool:
        """Store ``tool``; a tool with the same name keeps its id and is replaced."""
        existing = await self._redis.hget(keys.tool_names(), tool.name)
        if existing is not None and text(existing) != tool.id:
            tool = msgspec.structs.replace(tool, id=text(existing))
        # Three hash slots, in order (no transaction spans slots on a cluster): the record
        # first, so that an index entry never points to a tool not stored.
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.set(keys.tool(tool.id), encode(tool))
            pipe.hset(keys.tool_names(), tool.name, tool.id)
            pipe.sadd(keys.tools_all(), tool.id)
            await pipe.execute()
        return tool

    async def get(self, tool_id: str) -> Tool:
        return await fetch(self._redis, keys.tool(tool_id), Tool, f"no tool with id {tool_id!r}")

    async def get_by_name(self, name: str) -> Tool | None:
        tool_id = await self._redis.hget(keys.tool_names(), name)
        if tool_id is None:
            return None
        raw = await self._redis.get(keys.tool(text(tool_id)))
        return decode(Tool, raw) if raw is not None else None

    async def get_many_by_name(self, names: builtins.list[str]) -> dict[str, Tool]:
        if not names:
            return {}
        return await self.by_ids(await self._redis.hmget(keys.tool_names(), names))

    async def by_ids(self, ids: Sequence[bytes | str | None]) -> dict[str, Tool]:
        """The tools with these ids by name (None and missing ids are skipped): the second half
        of a lookup by name whose ``HMGET`` of the name index ran elsewhere."""
        wanted = [keys.tool(text(i)) for i in ids if i is not None]
        return {t.name: t for t in await fetch_many(self._redis, wanted, Tool)}

    async def list(self) -> builtins.list[Tool]:
        ids = texts(await self._redis.smembers(keys.tools_all()))
        tools = await fetch_many(self._redis, [keys.tool(i) for i in ids], Tool)
        return sorted(tools, key=lambda t: t.name)

    async def delete(self, tool_id: str) -> Tool:
        tool = await self.get(tool_id)
        # The indexes first, the record last (see upsert); readers skip missing records.
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hdel(keys.tool_names(), tool.name)
            pipe.srem(keys.tools_all(), tool_id)
            pipe.delete(keys.tool(tool_id))
            await pipe.execute()
        return tool
