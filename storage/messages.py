"""The message log (recall memory): every message of an agent, in order, searchable.

A message is a JSON record (``mg:{A}:msg:<id>``) plus its place in the ordering index
(``mg:{A}:messages``, id -> seq) and in the recall index (terms, role, time; see
:mod:`storage._recall_index`). All of them carry the agent's hash tag, so a step's messages
commit in the same MULTI/EXEC as the rest of the step: :meth:`MessageLog.stage` only adds
commands to a pipeline the caller owns, and the caller executes it after checking its lease's
fencing token. The caller also assigns ``seq``: it holds the agent's lease, so reading the
current maximum (:meth:`MessageLog.next_seq`) and writing above it cannot race another writer,
and a stale writer's transaction is refused by the fencing check.

Search intersects posting lists inside Redis (one script call, then one MGET), so its cost
follows the size of the smallest posting list and the page, not the size of the log.
"""

from __future__ import annotations

import builtins
import heapq
from collections.abc import Iterable, Sequence
from typing import Any, Literal

import msgspec
import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.typing import EncodableT

from storage import _recall_index as ix
from storage import keys
from storage._util import text, texts
from storage.errors import InvalidRecord, NotFound
from storage.records import Message, Role, decode, encode

__all__ = ("MessageLog", "SearchPage")

_BATCH = 500
# More than any log holds; a larger limit (a client's "all", 10**23) would overflow the
# 64-bit count of ZRANGE ... LIMIT and come back as a Redis error.
_MAX_LIMIT = 2**31 - 1


class SearchPage(msgspec.Struct, frozen=True, kw_only=True):
    """One page of search results.

    Attributes:
        messages: the page, newest first ("all" mode) or most matched terms first ("any").
        total: how many messages match in all (for "page 2 of 7").
        mode: ``"all"`` when every query term matched; ``"any"`` when no message had all of
            them and the page holds messages with some of them instead.
    """

    messages: list[Message]
    total: int
    mode: Literal["all", "any"] = "all"


class MessageLog:
    """An agent's message log in Redis, with keyword search.

    Args:
        redis: an asyncio client (``decode_responses=False``).
    """

    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis
        self._search = redis.register_script(ix.SEARCH_SCRIPT)

    # --- writing ---------------------------------------------------------------------------

    async def next_seq(self, agent_id: str) -> int:
        """The seq for the agent's next message: one more than the highest stored (1 at first).

        Safe only for the holder of the agent's lease, who commits before anyone else reads it.
        """
        top = await self._redis.zrevrange(keys.agent_messages(agent_id), 0, 0, withscores=True)
        return self.seq_after(top)

    @staticmethod
    def seq_after(top: Any) -> int:
        """The next seq from ``ZREVRANGE messages 0 0 WITHSCORES`` (read by the caller)."""
        return int(top[0][1]) + 1 if top else 1

    def stage(self, pipe: Pipeline, messages: Sequence[Message]) -> None:
        """Add the writes of new ``messages`` to ``pipe`` without executing them.

        Nothing is visible until the caller executes the pipeline (a transaction, so all or
        nothing). Staging the same message with the same seq again writes the same values.

        Args:
            pipe: the caller's pipeline, normally ``redis.pipeline(transaction=True)``.
            messages: messages of one agent with seqs assigned (1 .. 2**32 - 1).

        Raises:
            InvalidRecord: messages of several agents, or a seq not assigned.
        """
        if not messages:
            return
        agent_id = messages[0].agent_id
        records: dict[str, bytes] = {}
        order: dict[str, int] = {}
        by_role: dict[str, dict[str, float]] = {}
        times: dict[str, float] = {}
        searchable: dict[str, str] = {}
        postings: dict[str, dict[str, float]] = {}
        for message in messages:
            _check(message, agent_id)
            seq, score = str(message.seq), float(ix.SCORE_BASE + message.seq)
            records[keys.message(agent_id, message.id)] = encode(message)
            order[message.id] = message.seq
            by_role.setdefault(message.role, {})[seq] = score
            times[seq] = message.created_at
            found = searchable[seq] = ix.searchable_text(message)
            for term in ix.index_terms(found):
                postings.setdefault(term, {})[seq] = score
        # One command per structure, not per message: a bulk import stays a few commands.
        pipe.execute_command("MSET", *(x for kv in records.items() for x in kv))  # one slot
        pipe.zadd(keys.agent_messages(agent_id), order)
        for role, members in by_role.items():
            pipe.zadd(ix.role_key(agent_id, role), members)
        pipe.zadd(ix.times_key(agent_id), times)
        texts_found: dict[EncodableT, EncodableT] = {s: t for s, t in searchable.items() if t}
        if texts_found:
            pipe.hset(ix.text_key(agent_id), mapping=texts_found)
        for term, members in postings.items():
            pipe.zadd(ix.term_key(agent_id, term), members)
        if postings:
            pipe.sadd(ix.terms_key(agent_id), *postings)

    async def append(self, messages: Sequence[Message]) -> builtins.list[Message]:
        """Store ``messages`` of one agent in a transaction of their own.

        Messages whose ``seq`` is 0 get the next seqs in order; use :meth:`stage` to commit
        with other writes of a step.

        Returns:
            The messages as stored (with their seqs).
        """
        if not messages:
            return []
        seq = await self.next_seq(messages[0].agent_id)
        stored = []
        for message in messages:
            if message.seq == 0:
                message = msgspec.structs.replace(message, seq=seq)
            seq = max(seq, message.seq + 1)
            stored.append(message)
        async with self._redis.pipeline(transaction=True) as pipe:
            self.stage(pipe, stored)
            await pipe.execute()
        return stored

    # --- reading ---------------------------------------------------------------------------

    async def get(self, agent_id: str, ids: Sequence[str]) -> builtins.list[Message]:
        """The messages with ``ids``, in that order; ids not stored are skipped."""
        if not ids:
            return []
        found = await self._redis.mget([keys.message(agent_id, i) for i in ids])
        return [decode(Message, raw) for raw in found if raw is not None]

    async def get_one(self, agent_id: str, message_id: str) -> Message | None:
        """The message ``message_id``, or None."""
        raw = await self._redis.get(keys.message(agent_id, message_id))
        return None if raw is None else decode(Message, raw)

    async def count(self, agent_id: str, *, roles: Iterable[Role] | None = None) -> int:
        """How many messages the agent's log holds (of ``roles``, when given)."""
        if roles is None:
            return int(await self._redis.zcard(keys.agent_messages(agent_id)))
        async with self._redis.pipeline(transaction=False) as pipe:
            for role in _roles(roles):
                pipe.zcard(ix.role_key(agent_id, role))
            return sum(int(n) for n in await pipe.execute())

    async def list(
        self,
        agent_id: str,
        *,
        after: str | None = None,
        before: str | None = None,
        limit: int = 50,
        ascending: bool = True,
        roles: Iterable[Role] | None = None,
    ) -> builtins.list[Message]:
        """A page of the log between two cursors, like Letta's ``GET /messages``.

        Args:
            agent_id: whose log.
            after: only messages after this message id.
            before: only messages before this message id.
            limit: at most this many; the ones nearest ``after`` when ascending, nearest
                ``before`` (the newest) when descending.
            ascending: oldest first; False for newest first.
            roles: only messages of these roles.

        Raises:
            NotFound: ``after`` or ``before`` is not a message of this agent.
            InvalidRecord: a negative limit or an unknown role.
        """
        if limit < 0:
            raise InvalidRecord(f"limit must be 0 or more, not {limit}")
        limit = min(limit, _MAX_LIMIT)
        wanted = None if roles is None else _roles(roles)
        if limit == 0:
            return []
        low, high = await self._bounds(agent_id, after, before)
        if wanted is None or len(wanted) == len(ix.ROLES):
            ids = await self._range(keys.agent_messages(agent_id), low, high, limit, ascending)
            return await self.get(agent_id, texts(ids))
        base = ix.SCORE_BASE
        async with self._redis.pipeline(transaction=False) as pipe:
            for role in wanted:
                self._range_into(
                    pipe, ix.role_key(agent_id, role), low, high, limit, ascending, base
                )
            runs = [[int(s) for s in seqs] for seqs in await pipe.execute()]
        merged = heapq.merge(*runs, reverse=not ascending)
        seqs = [seq for _, seq in zip(range(limit), merged, strict=False)]
        return await self._by_seqs(agent_id, seqs)

    async def search(
        self,
        agent_id: str,
        query: str,
        *,
        roles: Iterable[Role] | None = None,
        start: float | None = None,
        end: float | None = None,
        limit: int = 10,
        page: int = 0,
    ) -> SearchPage:
        """Keyword search over the agent's whole log.

        Messages with every term of ``query`` come first, newest first; when none has them
        all, messages with any of them, most matched terms first. A ``"quoted phrase"`` must
        appear verbatim (case and whitespace aside) in every match. Words are casefolded
        unicode words without common English stop words; Chinese and Japanese characters are
        words of one character, and a run of them must appear as written.

        Args:
            agent_id: whose log.
            query: words and quoted phrases.
            roles: only messages of these roles.
            start: only messages created at or after this time (epoch seconds).
            end: only messages created at or before this time (epoch seconds).
            limit: page size, 1 to 1000.
            page: page number, from 0.

        Raises:
            InvalidRecord: a limit or page out of range, or an unknown role.
        """
        if not 1 <= limit <= 1000 or page < 0:
            raise InvalidRecord(f"search needs 1 <= limit <= 1000 and page >= 0 ({limit}, {page})")
        wanted = list(ix.ROLES) if roles is None else _roles(roles)
        parsed = ix.parse_query(query)
        if not wanted or not (parsed.required or parsed.loose or parsed.phrases):
            return SearchPage(messages=[], total=0)
        exclude = [] if len(wanted) == len(ix.ROLES) else [r for r in ix.ROLES if r not in wanted]
        has_terms = bool(parsed.required or parsed.loose)
        scan = [] if has_terms else wanted
        if not has_terms:
            exclude = []
        key_list = [
            *ix.tmp_keys(agent_id),
            keys.agent_messages(agent_id),
            ix.times_key(agent_id),
            ix.text_key(agent_id),
            *(ix.term_key(agent_id, t) for t in parsed.required),
            *(ix.term_key(agent_id, t) for t in parsed.loose),
            *(ix.role_key(agent_id, r) for r in exclude),
            *(ix.role_key(agent_id, r) for r in scan),
        ]
        args: builtins.list[str | int] = [
            len(parsed.required),
            len(parsed.loose),
            len(exclude),
            len(scan),
            "-inf" if start is None else repr(float(start)),
            "+inf" if end is None else repr(float(end)),
            page * limit,
            limit,
            len(parsed.phrases),
            *parsed.phrases,
        ]
        reply = await self._search(keys=key_list, args=args)
        mode: Literal["all", "any"] = "any" if text(reply[0]) == "any" else "all"
        found = await self.get(agent_id, texts(reply[2:]))
        return SearchPage(messages=found, total=int(reply[1]), mode=mode)

    # --- deleting --------------------------------------------------------------------------

    async def delete_agent(self, agent_id: str) -> int:
        """Delete the agent's whole log and index, in batches; returns how many messages.

        The caller makes sure nobody writes to the agent meanwhile (it holds the lease, or the
        agent is already gone from the registry).
        """
        order = keys.agent_messages(agent_id)
        removed = 0
        while ids := _members(await self._redis.zrange(order, 0, _BATCH - 1)):
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.execute_command("UNLINK", *(keys.message(agent_id, text(i)) for i in ids))
                pipe.zrem(order, *ids)
                await pipe.execute()
            removed += len(ids)
        terms = ix.terms_key(agent_id)
        while batch := _members(await self._redis.spop(terms, _BATCH)):
            await self._redis.unlink(*(ix.term_key(agent_id, text(t)) for t in batch))
        await self._redis.unlink(
            terms,
            ix.times_key(agent_id),
            ix.text_key(agent_id),
            *ix.tmp_keys(agent_id),
            *(ix.role_key(agent_id, r) for r in ix.ROLES),
        )
        return removed

    # --- helpers ---------------------------------------------------------------------------

    async def _bounds(
        self, agent_id: str, after: str | None, before: str | None
    ) -> tuple[float | None, float | None]:
        """Exclusive seq bounds of the cursors."""
        order = keys.agent_messages(agent_id)
        bounds: builtins.list[float | None] = []
        for cursor in (after, before):
            if cursor is None:
                bounds.append(None)
                continue
            score = await self._redis.zscore(order, cursor)
            if score is None:
                raise NotFound(f"message {cursor!r} is not in the log of agent {agent_id!r}")
            bounds.append(score)
        return bounds[0], bounds[1]

    async def _range(
        self, key: str, low: float | None, high: float | None, limit: int, ascending: bool
    ) -> builtins.list[bytes]:
        async with self._redis.pipeline(transaction=False) as pipe:
            self._range_into(pipe, key, low, high, limit, ascending, 0)
            (found,) = await pipe.execute()
        return list(found)

    @staticmethod
    def _range_into(
        pipe: Pipeline,
        key: str,
        low: float | None,
        high: float | None,
        limit: int,
        ascending: bool,
        base: int,
    ) -> None:
        lo = "-inf" if low is None else f"({int(low) + base}"
        hi = "+inf" if high is None else f"({int(high) + base}"
        if ascending:
            pipe.zrangebyscore(key, lo, hi, start=0, num=limit)
        else:
            pipe.zrevrangebyscore(key, hi, lo, start=0, num=limit)

    async def _by_seqs(self, agent_id: str, seqs: Sequence[int]) -> builtins.list[Message]:
        order = keys.agent_messages(agent_id)
        async with self._redis.pipeline(transaction=False) as pipe:
            for seq in seqs:
                pipe.zrangebyscore(order, seq, seq, start=0, num=1)
            found = await pipe.execute()
        return await self.get(agent_id, [text(ids[0]) for ids in found if ids])


def _check(message: Message, agent_id: str) -> None:
    if message.agent_id != agent_id:
        raise InvalidRecord(
            f"one transaction holds the messages of one agent; got {agent_id!r} and "
            f"{message.agent_id!r}: stage them separately"
        )
    if not 1 <= message.seq <= ix.MAX_SEQ:
        raise InvalidRecord(
            f"message {message.id!r} has seq {message.seq}; assign seqs from "
            "MessageLog.next_seq() before staging"
        )


def _members(reply: object) -> builtins.list[bytes]:
    """The members of a ZRANGE/SPOP reply (typed loosely by redis-py)."""
    if not isinstance(reply, builtins.list):
        return []
    return [m for m in reply if isinstance(m, bytes)]


def _roles(roles: Iterable[str]) -> builtins.list[str]:
    wanted = list(dict.fromkeys(roles))
    unknown = [r for r in wanted if r not in ix.ROLES]
    if unknown:
        raise InvalidRecord(f"unknown roles {unknown}; use some of {list(ix.ROLES)}")
    return wanted
