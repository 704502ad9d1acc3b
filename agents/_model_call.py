"""A step's model call: streamed when a client follows the run live, journaled under a lease.

A step re-run after a crash must see the answer its first run acted on when that run's tools
had effects outside the step's commit, so the answer is journaled before the tools run (first
writer wins, fenced by the lease) and replayed on a re-run.
"""

from __future__ import annotations

from typing import Any

import msgspec

from agents._deltas import TokenStream
from agents._turn import Turn
from agents.llm import LLMResponse
from bus import keys as bus_keys
from bus.lease import journal

__all__ = ("JOURNAL_TTL_S", "llm_for_step")

JOURNAL_TTL_S = 24 * 3600
_llm_decoder = msgspec.json.Decoder(LLMResponse)
# Tools whose effects are all inside the step's commit (a reply, reads): no journal needed.
_COMMIT_ONLY_TOOLS = frozenset({"send_message", "conversation_search", "archival_memory_search"})


async def llm_for_step(
    turn: Turn, step: int, request: Any, tools: Any, sink: TokenStream | None
) -> LLMResponse:
    """The model's answer for ``step``: journaled under a lease, so a re-run replays it.

    A re-run must see the same answer when the first run's tools had effects outside the step's
    commit (block edits, archival inserts, sends: keyed by step and call id). Calls to tools
    whose effects are all in the commit need no journal, and a run on its first attempt that
    did not resume a wait has no journal to read: no one ran its steps before.
    """
    if turn.lease is None:
        return await _chat(turn, request, tools, sink)
    key = bus_keys.step_journal(turn.agent.id, turn.run.id, step)
    if not turn.first_attempt:
        journaled = await turn.rt.redis.get(key)
        if journaled is not None:
            return _llm_decoder.decode(journaled)
    response = await _chat(turn, request, tools, sink)
    if all(call.name in _COMMIT_ONLY_TOOLS for call in response.tool_calls):
        return response
    # First writer wins, and only while the lease is ours: a stale worker racing us can neither
    # make the two disagree nor leave a journal behind a finished run.
    ours = msgspec.json.encode(response)
    kept = await journal(turn.rt.redis, turn.lease, key, ours, JOURNAL_TTL_S)
    if kept == ours:
        return response
    if sink is not None:  # what was shown is not what commits
        sink.abandon()
    return _llm_decoder.decode(kept)


async def _chat(turn: Turn, request: Any, tools: Any, sink: TokenStream | None) -> LLMResponse:
    if sink is None:
        return await turn.llm.chat(turn.agent.model, request, tools)
    response = await turn.llm.stream(turn.agent.model, request, tools, sink=sink)
    sink.finish()
    return response
