"""Archival and recall memory through the step loop: real Qdrant Edge, real Redis, real HTTP."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from agents.archival import PassageArchival
from agents.letta_messages import ToolReturnMessage
from agents.manage import AgentSpec, create_agent
from agents.runtime import Runtime
from agents.scripted import FunctionModel, Reply, echo, say, sequence, tool_call
from storage.embeddings import HashingEmbedder, embedder_from_handle
from storage.passages import EdgePassageStore
from storage.records import Agent
from storage.settings import StorageSettings
from tests._util import tool_returns, turn


def _runtime(
    redis_client: aioredis.Redis, function_model: FunctionModel, archival: PassageArchival
) -> Runtime:
    return Runtime(redis=redis_client, llm=function_model, archival=archival)


def _chained(tool: str, **arguments: Any) -> Reply:
    """A call of ``tool`` that asks for a heartbeat: the model is asked again with its result."""
    return tool_call(tool, **arguments, request_heartbeat=True)


@pytest.fixture
async def archival(tmp_path: Path) -> AsyncIterator[PassageArchival]:
    """Archival memory on the embedded Qdrant engine with the (fast) hashing embedder."""
    store = PassageArchival(EdgePassageStore(tmp_path / "qdrant"), lambda handle: HashingEmbedder())
    try:
        yield store
    finally:
        await store.aclose()


@pytest.fixture
async def agent(rt: Runtime) -> Agent:
    """The test's agent, on the scripted model."""
    return await create_agent(rt, AgentSpec(name="archivist", model="openai/scripted"))


@pytest.fixture
async def rt(
    redis_client: aioredis.Redis, function_model: FunctionModel, archival: PassageArchival
) -> AsyncIterator[Runtime]:
    """The conftest ``runtime``, plus real archival memory."""
    runtime = _runtime(redis_client, function_model, archival)
    try:
        yield runtime
    finally:
        await runtime.aclose()


def _output(event: ToolReturnMessage) -> str:
    """What the tool itself returned, inside the loop's status envelope."""
    message: str = json.loads(event.tool_return)["message"]
    return message


def _rows(event: ToolReturnMessage) -> Any:
    assert event.status == "success", event.tool_return
    return json.loads(_output(event))


def _iso(when: dt.datetime) -> str:
    return when.isoformat()


def _tomorrow_and_today() -> tuple[str, str]:
    """Date bounds for a search: this time tomorrow (ISO 8601), which excludes what was
    written now, and today's date, which as a start or an end bound includes it."""
    now = dt.datetime.now(dt.UTC)
    return _iso(now + dt.timedelta(days=1)), now.date().isoformat()


async def _seed(archival: PassageArchival, agent: Agent, *items: tuple[str, list[str]]) -> None:
    for content, tags in items:
        await archival.insert(agent.id, agent.embedding, content, tags)


# --- archival memory -----------------------------------------------------------------------


async def test_insert_with_tags_then_search_finds_the_passage(
    rt: Runtime, function_model: FunctionModel, archival: PassageArchival, agent: Agent
) -> None:
    function_model.policy = sequence(
        _chained(
            "archival_memory_insert",
            content="Shilpa's cat is called Miso and sleeps on the piano.",
            tags=["pets", "family", "pets"],
        ),
        _chained("archival_memory_search", query="what is the cat called"),
        say("Your cat is Miso."),
    )
    events, result = await turn(rt, agent, "Remember my cat Miso. What is my cat called?")
    inserted, found, _sent = tool_returns(events)
    assert inserted.status == "success"
    assert _output(inserted).startswith("Saved to archival memory as passage")
    [row] = _rows(found)
    assert row["content"] == "Shilpa's cat is called Miso and sleeps on the piano."
    assert row["tags"] == ["family", "pets"]  # deduplicated and sorted
    assert dt.datetime.fromisoformat(row["timestamp"]).tzinfo is not None
    assert result.replies == ["Your cat is Miso."]
    # The model read the passage in the tool result that followed its call.
    seen = function_model.requests[2].last_tool_result
    assert seen is not None and "sleeps on the piano" in seen.content
    assert await archival.count(agent.id) == 1


async def test_memory_metadata_shows_the_archival_count_and_tags(
    rt: Runtime, function_model: FunctionModel, agent: Agent
) -> None:
    function_model.policy = sequence(
        _chained(
            "archival_memory_insert",
            content="Flight BA117 on May 3",
            tags=["travel"],
        ),
        _chained(
            "archival_memory_insert",
            content="Dentist on June 9",
            tags=["health", "travel"],
        ),
        say("Saved both."),
    )
    await turn(rt, agent, "remember my plans")
    assert "- 0 passages are stored in archival memory" in function_model.requests[0].system_prompt
    assert "Archival memory tags" not in function_model.requests[0].system_prompt
    prompt = function_model.requests[-1].system_prompt
    assert "- 2 passages are stored in archival memory" in prompt
    assert "- Archival memory tags: health, travel" in prompt


async def test_tag_filters_match_any_or_all(
    rt: Runtime, function_model: FunctionModel, archival: PassageArchival, agent: Agent
) -> None:
    await _seed(
        archival,
        agent,
        ("green tea at breakfast", ["food", "morning"]),
        ("coffee at the office", ["food"]),
        ("a run before work", ["morning", "sport"]),
        ("an untagged note about tea", []),
    )
    searches = [
        {"tags": ["food"]},
        {"tags": ["food", "sport"], "tag_match_mode": "any"},
        {"tags": ["food", "morning"], "tag_match_mode": "all"},
        {"tags": ["sport", "food"], "tag_match_mode": "all"},
    ]
    function_model.policy = sequence(
        *(_chained("archival_memory_search", query="tea", **search) for search in searches),
        say("done"),
    )
    events, _ = await turn(rt, agent, "search by tags")
    food, any_of, all_of, none_of, _sent = tool_returns(events)
    assert {r["content"] for r in _rows(food)} == {"green tea at breakfast", "coffee at the office"}
    assert {r["content"] for r in _rows(any_of)} == {
        "green tea at breakfast",
        "coffee at the office",
        "a run before work",
    }
    assert [r["content"] for r in _rows(all_of)] == ["green tea at breakfast"]
    assert none_of.status == "success"
    assert _output(none_of) == "No results found."


def _page_policy(query: str, pages: int, top_k: int) -> Any:
    return sequence(
        *(
            _chained(
                "archival_memory_search",
                query=query,
                top_k=top_k,
                page=page,
            )
            for page in range(pages)
        ),
        say("done"),
    )


async def test_search_pages_follow_the_ranking(
    rt: Runtime, function_model: FunctionModel, archival: PassageArchival, agent: Agent
) -> None:
    # Best first for the query below (the hashing embedder scores shared words).
    ranked = [
        "the roses in the garden need water",
        "water the roses in the garden at dusk",
        "a gnome in the garden",
        "the garden shed is red",
        "roses need water in summer",
    ]
    await _seed(archival, agent, *((text, ["garden"]) for text in reversed(ranked)))
    function_model.policy = _page_policy("watering the roses in the garden", pages=4, top_k=2)
    events, _ = await turn(rt, agent, "list my garden notes")
    *pages, past_end, _sent = tool_returns(events)
    assert [[r["content"] for r in _rows(page)] for page in pages] == [
        ranked[0:2],
        ranked[2:4],
        ranked[4:5],
    ]
    assert _output(past_end) == "No results found."


async def test_search_pages_show_equally_scored_passages_once_each(
    rt: Runtime, function_model: FunctionModel, archival: PassageArchival, agent: Agent
) -> None:
    # Passages that differ only in a number score the same: duplicates of a chunk, or notes
    # written from a template. Paging must still show each exactly once.
    notes = [f"note {n}: the garden needs water" for n in range(5)]
    await _seed(archival, agent, *((note, ["garden"]) for note in notes))
    function_model.policy = _page_policy("garden water", pages=4, top_k=2)
    events, _ = await turn(rt, agent, "list my garden notes")
    *pages, past_end, _sent = tool_returns(events)
    shown = [r["content"] for page in pages for r in _rows(page)]
    assert [len(_rows(page)) for page in pages] == [2, 2, 1]
    assert sorted(shown) == notes  # none twice, none missing
    assert _output(past_end) == "No results found."


async def test_search_by_date_range(
    rt: Runtime, function_model: FunctionModel, archival: PassageArchival, agent: Agent
) -> None:
    await _seed(archival, agent, ("the boiler was serviced", ["home"]))
    now, hour = dt.datetime.now(dt.UTC), dt.timedelta(hours=1)
    tomorrow, today = _tomorrow_and_today()
    windows = [
        {"start_datetime": tomorrow},
        {"start_datetime": _iso(now - hour), "end_datetime": _iso(now + hour)},
        # A bare date as the end bound covers that whole day; two days ago is still too early.
        {"end_datetime": (now - dt.timedelta(days=2)).date().isoformat()},
        {"start_datetime": today, "end_datetime": today},
    ]
    function_model.policy = sequence(
        *(_chained("archival_memory_search", query="boiler", **window) for window in windows),
        say("done"),
    )
    events, _ = await turn(rt, agent, "when was the boiler serviced?")
    future, around_now, long_ago, of_today, _sent = tool_returns(events)
    assert _output(future) == "No results found."
    assert [r["content"] for r in _rows(around_now)] == ["the boiler was serviced"]
    assert _output(long_ago) == "No results found."
    assert [r["content"] for r in _rows(of_today)] == ["the boiler was serviced"]


async def test_bad_search_arguments_are_tool_errors(
    rt: Runtime, function_model: FunctionModel, archival: PassageArchival, agent: Agent
) -> None:
    await _seed(archival, agent, ("a passage", []))
    function_model.policy = sequence(
        _chained("archival_memory_search", query="passage", top_k=0),
        _chained("archival_memory_search", query="passage", top_k=51),
        _chained("archival_memory_search", query="passage", page=-1),
        _chained(
            "archival_memory_search",
            query="passage",
            start_datetime="last tuesday",
        ),
        _chained("archival_memory_insert", content="   "),
        _chained("archival_memory_search", query="passage"),
        say("recovered"),
    )
    events, result = await turn(rt, agent, "search badly")
    returns = tool_returns(events)
    assert [r.status for r in returns] == ["error"] * 5 + ["success", "success"]
    assert "top_k must be between 1 and 50, got 0" in _output(returns[0])
    assert "top_k must be between 1 and 50, got 51" in _output(returns[1])
    assert "page must be 0 or more, got -1" in _output(returns[2])
    assert "start_datetime='last tuesday' is not a date" in _output(returns[3])
    assert "ISO 8601" in _output(returns[3])
    assert "content is empty" in _output(returns[4])
    assert [r["content"] for r in _rows(returns[5])] == ["a passage"]
    assert result.stop_reason == "end_turn" and result.replies == ["recovered"]
    assert await archival.count(agent.id) == 1  # the refused insert wrote nothing


async def test_archival_memories_of_two_agents_are_isolated(
    rt: Runtime, function_model: FunctionModel, archival: PassageArchival
) -> None:
    alice = await create_agent(rt, AgentSpec(name="alice", model="openai/scripted"))
    bob = await create_agent(rt, AgentSpec(name="bob", model="openai/scripted"))
    function_model.policy = sequence(
        _chained(
            "archival_memory_insert",
            content="The safe's code is 4711",
            tags=["secret"],
        ),
        say("Kept it."),
    )
    await turn(rt, alice, "remember the safe's code 4711")
    search = _chained("archival_memory_search", query="safe code")
    function_model.policy = sequence(search, say("searched"))
    bob_events, _ = await turn(rt, bob, "what is the safe's code?")
    assert _output(tool_returns(bob_events)[0]) == "No results found."
    assert "- 0 passages are stored in archival memory" in function_model.requests[-1].system_prompt
    assert "secret" not in function_model.requests[-1].system_prompt
    function_model.policy = sequence(search, say("searched"))
    alice_events, _ = await turn(rt, alice, "what is the safe's code?")
    assert [r["content"] for r in _rows(tool_returns(alice_events)[0])] == [
        "The safe's code is 4711"
    ]
    assert (await archival.count(alice.id), await archival.count(bob.id)) == (1, 0)
    assert (await archival.tags(alice.id), await archival.tags(bob.id)) == (["secret"], [])


async def test_an_agent_without_archival_gets_a_clear_tool_error(
    runtime: Runtime, function_model: FunctionModel
) -> None:
    assert runtime.archival is None
    agent = await create_agent(runtime, AgentSpec(name="no-archive", model="openai/scripted"))
    function_model.policy = sequence(
        _chained("archival_memory_insert", content="remember this"),
        _chained("archival_memory_search", query="this"),
        say("I could not use my archive."),
    )
    events, result = await turn(runtime, agent, "remember this")
    inserted, searched, _sent = tool_returns(events)
    for event in (inserted, searched):
        assert event.status == "error"
        assert "archival memory is not available" in _output(event)
    assert result.stop_reason == "end_turn"
    assert "- 0 passages are stored in archival memory" in function_model.requests[-1].system_prompt


async def test_semantic_search_with_the_local_minilm_model(
    redis_client: aioredis.Redis, function_model: FunctionModel, memgrid_home: Path
) -> None:
    settings = StorageSettings.from_env()
    assert settings.home == memgrid_home  # the model's graph is cached in the test's home
    semantic = PassageArchival(
        EdgePassageStore(memgrid_home / "qdrant"),
        lambda handle: embedder_from_handle(handle, settings),
    )
    runtime = _runtime(redis_client, function_model, semantic)
    try:
        agent = await create_agent(runtime, AgentSpec(name="sweet", model="openai/scripted"))
        assert agent.embedding == "local/all-MiniLM-L6-v2"
        facts = [
            "Shilpa's favourite colour is teal",
            "The meeting with Raj moved to Tuesday at 10am",
            "Shilpa loves Hersheys",
            "The car needs new tyres before winter",
            "My dog is afraid of thunderstorms",
        ]
        function_model.policy = sequence(
            *(_chained("archival_memory_insert", content=fact) for fact in facts),
            _chained(
                "archival_memory_search",
                query="what chocolates do I like",
                top_k=1,
            ),
            say("You love Hersheys."),
        )
        events, result = await turn(runtime, agent, "what chocolates do I like?")
        returns = tool_returns(events)
        assert [r.status for r in returns] == ["success"] * 7
        # The query shares no word with the passage: only its meaning can find it.
        assert [r["content"] for r in _rows(returns[5])] == ["Shilpa loves Hersheys"]
        assert result.replies == ["You love Hersheys."]
        assert await semantic.count(agent.id) == 5
    finally:
        await runtime.aclose()
        await semantic.aclose()


# --- recall memory -------------------------------------------------------------------------


@pytest.fixture
async def conversed(rt: Runtime, function_model: FunctionModel, agent: Agent) -> None:
    """The test's agent has had four exchanges; the echo policy repeated each user message."""
    function_model.policy = echo
    for said in (
        "I adopted a black cat named Miso",
        "Miso sleeps on the piano all day",
        "The cat next door is black and white",
        "I drink green tea every morning",
    ):
        _events, result = await turn(rt, agent, said)
        assert result.replies == [said]


@pytest.mark.usefixtures("conversed")
async def test_conversation_search_filters_roles_and_pages(
    rt: Runtime, function_model: FunctionModel, agent: Agent
) -> None:
    function_model.policy = sequence(
        _chained("conversation_search", query="Miso", roles=["user"]),
        *(
            _chained(
                "conversation_search",
                query="Miso",
                roles=["user"],
                limit=1,
                page=page,
            )
            for page in range(3)
        ),
        _chained("conversation_search", query="tea", roles=["assistant"]),
        say("done"),
    )
    events, _ = await turn(rt, agent, "look it up")
    everything, page0, page1, page2, assistant, _sent = tool_returns(events)

    found = _rows(everything)
    assert found["total"] == 2
    assert [r["role"] for r in found["results"]] == ["user", "user"]
    assert {r["content"] for r in found["results"]} == {
        "I adopted a black cat named Miso",
        "Miso sleeps on the piano all day",
    }
    paged = [_rows(page0), _rows(page1)]
    assert [p["page"] for p in paged] == [0, 1]
    assert all(p["total"] == 2 and len(p["results"]) == 1 for p in paged)
    # The pages together hold the same messages as one big page, in the same order.
    assert [p["results"][0] for p in paged] == found["results"]
    assert _output(page2) == "No results found."

    [reply] = _rows(assistant)["results"]
    assert reply["role"] == "assistant"
    assert "send_message" in reply["content"]
    assert "I drink green tea every morning" in reply["content"]


@pytest.mark.usefixtures("conversed")
async def test_conversation_search_matches_a_quoted_phrase(
    rt: Runtime, function_model: FunctionModel, agent: Agent
) -> None:
    function_model.policy = sequence(
        _chained("conversation_search", query='"black cat"'),
        _chained("conversation_search", query="black cat", roles=["user"]),
        say("done"),
    )
    events, _ = await turn(rt, agent, "look it up")
    phrase, words, _sent = tool_returns(events)
    found = _rows(phrase)
    # The user's message and the agent's echo of it; "black and white" ... "cat" is not a match.
    assert sorted(r["role"] for r in found["results"]) == ["assistant", "user"]
    assert all("black cat" in r["content"] for r in found["results"])
    assert not any("next door" in r["content"] for r in found["results"])
    loose = {r["content"] for r in _rows(words)["results"]}
    assert loose == {"I adopted a black cat named Miso", "The cat next door is black and white"}


@pytest.mark.usefixtures("conversed")
async def test_conversation_search_dates_and_limits(
    rt: Runtime, function_model: FunctionModel, agent: Agent
) -> None:
    tomorrow, today = _tomorrow_and_today()
    function_model.policy = sequence(
        _chained("conversation_search", query="Miso", start_date=tomorrow),
        _chained(
            "conversation_search",
            query="Miso",
            roles=["user"],
            start_date=today,
            end_date=today,
        ),
        _chained("conversation_search", query="Miso", end_date="31/01/2024"),
        _chained("conversation_search", query="Miso", limit=0),
        _chained("conversation_search", query="Miso", page=-2),
        say("done"),
    )
    events, result = await turn(rt, agent, "look it up")
    future, of_today, bad_date, bad_limit, bad_page, _sent = tool_returns(events)
    assert future.status == "success" and _output(future) == "No results found."
    assert _rows(of_today)["total"] == 2
    assert bad_date.status == "error"
    assert "end_date='31/01/2024' is not a date" in _output(bad_date)
    assert bad_limit.status == "error"
    assert "limit must be between 1 and 50, got 0" in _output(bad_limit)
    assert bad_page.status == "error"
    assert "page must be 0 or more, got -2" in _output(bad_page)
    assert result.replies == ["done"]


@pytest.mark.usefixtures("conversed")
async def test_recall_count_in_the_metadata_grows_with_the_log(
    rt: Runtime, function_model: FunctionModel, agent: Agent
) -> None:
    stored = await rt.messages.count(agent.id)
    assert stored == 12  # four turns of user message, send_message call, tool result
    function_model.policy = sequence(say("hi"))
    await turn(rt, agent, "hello again")
    assert f"- {stored} previous messages are stored in recall memory" in (
        function_model.requests[-1].system_prompt
    )


async def test_deleting_an_agent_deletes_its_archival_memory(
    rt: Runtime, function_model: FunctionModel
) -> None:
    from agents.manage import delete_agent

    agent = await create_agent(rt, AgentSpec(name="forgetful", embedding="hashing/384"))
    assert rt.archival is not None
    await rt.archival.insert(agent.id, agent.embedding, "a fact worth keeping", [])
    assert await rt.archival.count(agent.id) == 1
    await delete_agent(rt, agent.id)
    assert await rt.archival.count(agent.id) == 0
