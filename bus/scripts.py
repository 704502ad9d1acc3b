"""Lua scripts called by their SHA: one round trip, the source sent only on a cold cache."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError

__all__ = ("LuaScript",)


class LuaScript:
    """A script usable with any client (unlike ``Redis.register_script``, bound to one).

    ``EVALSHA`` first; on ``NOSCRIPT`` (a restarted or flushed server) ``EVAL``, which also
    loads the script for the next call.
    """

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    async def __call__(
        self, redis: aioredis.Redis, keys: Sequence[Any] = (), args: Sequence[Any] = ()
    ) -> Any:
        try:
            return await redis.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            return await redis.eval(self.source, len(keys), *keys, *args)
