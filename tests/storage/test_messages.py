"""The message log against a real redis-server: staging, ordering, paging, search, deletion."""

from __future__ import annotations

import json
import re

import pytest
import redis.asyncio as aioredis

from storage._recall_index import parse_query, searchable_text, tokenize
from storage.errors import InvalidRecord, NotFound
from storage.messages import MessageLog, SearchPage
from storage.records import Message, Role, ToolCall, new_id

AGENT = "agent-aaaa"
OTHER = "agent-bbbb"
T0 = 1_700_000_000.0


def msg(
    seq: int,
    content: str = "",
    *,
    role: Role = "user",
    agent_id: str = AGENT,
    at: float | None = None,
    tool_calls: list[ToolCall] | None = None,
) -> Message:
    return Message(
        id=f"message-{agent_id}-{seq}",
        agent_id=agent_id,
        role=role,
        content=content,
        seq=seq,
        tool_calls=tool_calls or [],
        run_id="run-1",
        step_id=f"step-{seq}",
        created_at=T0 + seq * 60 if at is None else at,
    )


def reply(seq: int, text: str, *, thoughts: str = "") -> Message:
    args = json.dumps({"message": text, "request_heartbeat": False})
    call = ToolCall(id=f"call-{seq}", name="send_message", arguments=args)
    return msg(seq, thoughts, role="assistant", tool_calls=[call])


async def append_texts(log: MessageLog, *texts: str) -> None:
    """User messages of :data:`AGENT` with these texts, seq 1, 2, 3..."""
    await log.append([msg(seq, text) for seq, text in enumerate(texts, start=1)])


def ids(messages: list[Message]) -> list[int]:
    return [m.seq for m in messages]


async def agent_keys(client: aioredis.Redis, agent_id: str) -> list[str]:
    pattern = re.sub(r"([\[\]*?\\])", r"\\\1", f"mg:{{{agent_id}}}:") + "*"
    return sorted([k.decode() async for k in client.scan_iter(match=pattern, count=1000)])


@pytest.fixture
def log(redis_client: aioredis.Redis) -> MessageLog:
    return MessageLog(redis_client)


# --- tokeniser and query parser --------------------------------------------------------------


def test_tokenize_is_casefolded_unicode_without_stop_words() -> None:
    assert tokenize("The Straße, CAFÉ and naïve résumé: it's 42!") == [
        "strasse",
        "café",
        "naïve",
        "résumé",
        "42",
    ]
    assert tokenize("東京タワー") == ["東", "京", "タ", "ワ", "ー"]
    assert tokenize("x" * 100) == ["x" * 64]


def test_parse_query_splits_phrases_and_terms() -> None:
    parsed = parse_query('pizza "New  York" the pizza "" "unclosed')
    assert parsed.phrases == ("new york",)
    assert parsed.required == ("new", "york")
    assert parsed.loose == ("pizza", "unclosed")
    assert parse_query("東京 tower").phrases == ("東京",)


def test_searchable_text_reads_json_values_not_keys() -> None:
    tool_return = msg(
        1,
        '{"status": "OK", "message": "Saved  the\\nfile", "n": 3, "time": "2026-11-21T14:00"}',
        role="tool",
    )
    # Bookkeeping of tool results (status, time) is left out: nobody searches for it, and
    # every timestamp would add new terms to the index.
    assert searchable_text(tool_return) == "saved the file\n3"
    assert searchable_text(reply(2, "Hello Bob", thoughts="Greet him")) == "greet him\nhello bob"
    assert searchable_text(msg(3, "{not json")) == "{not json"


# --- writing -------------------------------------------------------------------------------


async def test_stage_is_invisible_until_exec_and_discard_leaves_nothing(
    log: MessageLog, redis_client: aioredis.Redis
) -> None:
    async with redis_client.pipeline(transaction=True) as pipe:
        log.stage(pipe, [msg(1, "hello world"), msg(2, "second")])
        pipe.set(f"mg:{{{AGENT}}}:state", b"step-2")  # the caller's own write, same MULTI
        assert await log.count(AGENT) == 0
        assert (await log.search(AGENT, "hello")).total == 0
        await pipe.reset()  # DISCARD: nothing was sent
    assert await agent_keys(redis_client, AGENT) == []

    async with redis_client.pipeline(transaction=True) as pipe:
        log.stage(pipe, [msg(1, "hello world"), msg(2, "second")])
        pipe.set(f"mg:{{{AGENT}}}:state", b"step-2")
        await pipe.execute()
    assert await log.count(AGENT) == 2
    assert ids((await log.search(AGENT, "hello")).messages) == [1]


async def test_stage_rejects_mixed_agents_and_unassigned_seq(
    log: MessageLog, redis_client: aioredis.Redis
) -> None:
    async with redis_client.pipeline(transaction=True) as pipe:
        with pytest.raises(InvalidRecord, match="one agent"):
            log.stage(pipe, [msg(1), msg(2, agent_id=OTHER)])
        with pytest.raises(InvalidRecord, match="next_seq"):
            log.stage(pipe, [msg(0)])


async def test_append_assigns_seqs_after_the_last(log: MessageLog) -> None:
    assert await log.next_seq(AGENT) == 1
    await log.append([msg(1, "a"), msg(2, "b")])
    assert await log.next_seq(AGENT) == 3
    stored = await log.append([msg(0, "c"), msg(0, "d")])
    assert ids(stored) == [3, 4]
    assert await log.next_seq(AGENT) == 5
    assert await log.append([]) == []


async def test_every_key_carries_the_agent_hash_tag(
    log: MessageLog, redis_client: aioredis.Redis
) -> None:
    await log.append(
        [msg(1, "hi there", role="system"), reply(2, "hello"), msg(3, "x", role="tool")]
    )
    await log.search(AGENT, '"hello" there')
    found = [k.decode() async for k in redis_client.scan_iter(count=1000)]
    assert found
    assert all(f"{{{AGENT}}}" in k for k in found), found


# --- reading -------------------------------------------------------------------------------


async def test_get_keeps_order_and_skips_missing(log: MessageLog) -> None:
    await log.append([msg(s, f"m{s}") for s in range(1, 6)])
    got = await log.get(AGENT, [f"message-{AGENT}-4", "nope", f"message-{AGENT}-2"])
    assert ids(got) == [4, 2]
    assert await log.get(AGENT, []) == []
    one = await log.get_one(AGENT, f"message-{AGENT}-3")
    assert one is not None
    assert one.content == "m3"
    assert one.step_id == "step-3"
    assert await log.get_one(AGENT, "nope") is None


async def test_list_pages_with_cursors_both_ways(log: MessageLog) -> None:
    # Stored out of order: the log orders by seq, not by arrival.
    await log.append([msg(s) for s in (3, 1, 2, 5, 4, 6, 7, 8, 9, 10)])
    mid = f"message-{AGENT}-"
    assert ids(await log.list(AGENT)) == list(range(1, 11))
    assert ids(await log.list(AGENT, limit=3)) == [1, 2, 3]
    assert ids(await log.list(AGENT, limit=3, ascending=False)) == [10, 9, 8]
    assert ids(await log.list(AGENT, after=mid + "3", limit=3)) == [4, 5, 6]
    assert ids(await log.list(AGENT, after=mid + "3", limit=3, ascending=False)) == [10, 9, 8]
    assert ids(await log.list(AGENT, before=mid + "5", limit=3)) == [1, 2, 3]
    assert ids(await log.list(AGENT, before=mid + "5", limit=3, ascending=False)) == [4, 3, 2]
    assert ids(await log.list(AGENT, after=mid + "2", before=mid + "6")) == [3, 4, 5]
    assert ids(await log.list(AGENT, after=mid + "10")) == []
    assert await log.list(AGENT, limit=0) == []
    # Walking the whole log page by page, newest first.
    seen: list[int] = []
    cursor: str | None = None
    while page := await log.list(AGENT, before=cursor, limit=4, ascending=False):
        seen += ids(page)
        cursor = page[-1].id
    assert seen == list(range(10, 0, -1))


async def test_list_rejects_unknown_cursor_and_bad_input(log: MessageLog) -> None:
    await log.append([msg(1)])
    await log.append([msg(1, agent_id=OTHER)])
    with pytest.raises(NotFound, match="nope"):
        await log.list(AGENT, after="nope")
    with pytest.raises(NotFound):
        await log.list(AGENT, before=f"message-{OTHER}-1")
    with pytest.raises(InvalidRecord):
        await log.list(AGENT, limit=-1)
    with pytest.raises(InvalidRecord, match="unknown roles"):
        await log.list(AGENT, roles=["robot"])  # type: ignore[list-item]  # checks bad input


async def test_list_and_count_filter_by_role(log: MessageLog) -> None:
    roles: list[Role] = ["system", "user", "assistant", "tool", "user", "assistant", "tool"]
    await log.append([msg(s, role=r) for s, r in enumerate(roles * 2, start=1)])
    assert await log.count(AGENT) == 14
    assert await log.count(AGENT, roles=["user", "tool"]) == 8
    assert ids(await log.list(AGENT, roles=["user"])) == [2, 5, 9, 12]
    assert ids(await log.list(AGENT, roles=["user", "tool"], limit=3)) == [2, 4, 5]
    got = await log.list(
        AGENT, roles=["user", "tool"], before=f"message-{AGENT}-12", limit=3, ascending=False
    )
    assert ids(got) == [11, 9, 7]
    assert ids(await log.list(AGENT, roles=["system"], after=f"message-{AGENT}-1")) == [8]
    all_roles: list[Role] = ["system", "user", "assistant", "tool"]
    assert ids(await log.list(AGENT, roles=all_roles, limit=2)) == [1, 2]
    assert await log.list(AGENT, roles=[]) == []


# --- search --------------------------------------------------------------------------------


async def test_search_and_then_any_fallback(log: MessageLog) -> None:
    await append_texts(
        log,
        "I love pizza with mushrooms",
        "Pizza tonight? The place on Main street",
        "mushrooms are fungi",
        "pizza pizza pizza",
        "completely unrelated words",
    )
    page = await log.search(AGENT, "pizza")
    assert (ids(page.messages), page.total, page.mode) == ([4, 2, 1], 3, "all")
    page = await log.search(AGENT, "PIZZA Mushrooms")
    assert (ids(page.messages), page.total, page.mode) == ([1], 1, "all")
    # No message has all three: messages with most matched terms first, then newest.
    page = await log.search(AGENT, "pizza mushrooms street")
    assert page.mode == "any"
    assert ids(page.messages) == [2, 1, 4, 3]
    assert page.total == 4
    assert (await log.search(AGENT, "the of and")).total == 0
    assert (await log.search(AGENT, "")).total == 0
    assert (await log.search(AGENT, "zebra")).total == 0
    assert (await log.search(AGENT, "zebra quagga")).messages == []


async def test_search_phrase_must_appear_verbatim(log: MessageLog) -> None:
    await append_texts(
        log,
        "We moved to New York last year",
        "York is new to me",
        "new\n  YORK pizza is the best",
        "to be or not to be",
        "Chicago pizza",
    )
    page = await log.search(AGENT, '"new york"')
    assert (ids(page.messages), page.total) == ([3, 1], 2)
    assert ids((await log.search(AGENT, '"new york" pizza')).messages) == [3]
    # A phrase of stop words only scans the log (slow path) but still works.
    assert ids((await log.search(AGENT, '"not to be"')).messages) == [4]
    # Nothing has the phrase and "chicago": fall back to phrase matches, best first.
    page = await log.search(AGENT, '"new york" chicago')
    assert page.mode == "any"
    assert ids(page.messages) == [3, 1]
    assert (await log.search(AGENT, '"york new"')).total == 0


async def test_search_unicode(log: MessageLog) -> None:
    await append_texts(
        log,
        "Ich wohne in der STRASSE am Café Müller",
        "東京タワーに行きました",
        "京都と東の話",
        "Привет, мир! Как дела?",
    )
    assert ids((await log.search(AGENT, "straße café")).messages) == [1]
    assert ids((await log.search(AGENT, "müller")).messages) == [1]
    assert ids((await log.search(AGENT, "東京")).messages) == [2]  # adjacency, not just 東 and 京
    assert ids((await log.search(AGENT, "МИР")).messages) == [4]


async def test_search_finds_tool_call_arguments_and_tool_returns(log: MessageLog) -> None:
    await log.append(
        [
            msg(1, "what is my favourite colour?"),
            reply(2, "Your favourite colour is Turquoise!", thoughts="User asks about colour"),
            msg(3, '{"status": "OK", "message": "turquoise stored"}', role="tool"),
        ]
    )
    page = await log.search(AGENT, "turquoise")
    assert ids(page.messages) == [3, 2]
    assert ids((await log.search(AGENT, '"colour is turquoise"')).messages) == [2]
    assert ids((await log.search(AGENT, "turquoise", roles=["assistant"])).messages) == [2]
    # JSON keys and tool names are not indexed.
    assert (await log.search(AGENT, "request_heartbeat")).total == 0
    assert (await log.search(AGENT, "status")).total == 0


async def test_search_role_filter(log: MessageLog) -> None:
    roles: list[Role] = ["user", "assistant", "tool", "system"]
    await log.append([msg(s, "apple", role=roles[s % 4]) for s in range(1, 13)])
    assert ids((await log.search(AGENT, "apple", roles=["user"])).messages) == [12, 8, 4]
    page = await log.search(AGENT, "apple", roles=["user", "assistant"], limit=3)
    assert (ids(page.messages), page.total) == ([12, 9, 8], 6)
    assert (await log.search(AGENT, "apple", roles=roles)).total == 12
    assert (await log.search(AGENT, "apple", roles=[])).total == 0
    with pytest.raises(InvalidRecord):
        await log.search(AGENT, "apple", roles=["robot"])  # type: ignore[list-item]  # bad input


async def test_search_date_range(log: MessageLog) -> None:
    await log.append([msg(s, "report", at=T0 + s) for s in range(1, 11)])
    page = await log.search(AGENT, "report", start=T0 + 3, end=T0 + 6)
    assert (ids(page.messages), page.total) == ([6, 5, 4, 3], 4)
    assert ids((await log.search(AGENT, "report", start=T0 + 9)).messages) == [10, 9]
    assert ids((await log.search(AGENT, "report", end=T0 + 2)).messages) == [2, 1]
    assert (await log.search(AGENT, "report", start=T0 + 20)).total == 0
    both = await log.search(AGENT, "report", start=T0 + 3, end=T0 + 6, roles=["user"], limit=2)
    assert (ids(both.messages), both.total) == ([6, 5], 4)


async def test_search_paging_and_total(log: MessageLog) -> None:
    await log.append([msg(s, f"note number {s}") for s in range(1, 26)])
    pages = [await log.search(AGENT, "note", limit=10, page=p) for p in range(4)]
    assert [p.total for p in pages] == [25] * 4
    assert ids(pages[0].messages) == list(range(25, 15, -1))
    assert ids(pages[2].messages) == [5, 4, 3, 2, 1]
    assert pages[3].messages == []
    phrase = await log.search(AGENT, '"note number"', limit=7, page=1)
    assert (ids(phrase.messages), phrase.total) == (list(range(18, 11, -1)), 25)
    with pytest.raises(InvalidRecord):
        await log.search(AGENT, "note", limit=0)
    with pytest.raises(InvalidRecord):
        await log.search(AGENT, "note", page=-1)


async def test_search_leaves_no_scratch_keys(log: MessageLog, redis_client: aioredis.Redis) -> None:
    await log.append([msg(s, "alpha beta", role="user" if s % 2 else "tool") for s in range(1, 9)])
    before = await agent_keys(redis_client, AGENT)
    await log.search(AGENT, "alpha beta", roles=["user"], start=T0, end=T0 + 10_000)
    await log.search(AGENT, '"alpha beta" gamma delta')
    assert await agent_keys(redis_client, AGENT) == before


async def test_search_page_is_a_record() -> None:
    page = SearchPage(messages=[], total=0)
    assert page.mode == "all"


# --- isolation and deletion ----------------------------------------------------------------


async def test_two_agents_are_isolated(log: MessageLog) -> None:
    await log.append([msg(1, "secret plan"), msg(2, "other")])
    await log.append([msg(1, "secret recipe", agent_id=OTHER)])
    assert ids((await log.search(AGENT, "secret")).messages) == [1]
    only = (await log.search(OTHER, "secret")).messages
    assert [m.id for m in only] == [f"message-{OTHER}-1"]
    assert (await log.search(OTHER, "plan")).total == 0
    assert await log.count(AGENT) == 2
    assert await log.count(OTHER) == 1


async def test_delete_agent_removes_every_key_of_it(
    log: MessageLog, redis_client: aioredis.Redis
) -> None:
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"]
    many = [
        msg(s, f"{words[s % 8]} {words[(s * 3) % 8]} word{s}", role="user" if s % 3 else "tool")
        for s in range(1, 1201)
    ]
    await log.append(many)
    await log.append([reply(1201, "keep me", thoughts="more")])
    await log.append([msg(1, "mine", agent_id=OTHER)])
    await log.search(AGENT, '"alpha beta" gamma')
    assert len(await agent_keys(redis_client, AGENT)) > 1200
    assert await log.delete_agent(AGENT) == 1201
    assert await agent_keys(redis_client, AGENT) == []
    assert await log.count(AGENT) == 0
    assert ids((await log.search(OTHER, "mine")).messages) == [1]
    assert await log.delete_agent(AGENT) == 0


async def test_unique_ids_from_records(log: MessageLog) -> None:
    first = Message(id=new_id("message"), agent_id=AGENT, role="user", content="hey")
    (stored,) = await log.append([first])
    assert stored.seq == 1
    assert await log.get(AGENT, [first.id]) == [stored]
