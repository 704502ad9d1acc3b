"""A step's first phase: ask the model.

Compile the context (evicting old messages into the summary when it would not fit), call the
model (streamed when a client follows the run live, journaled under a lease), and hand back
its answer as the step's assistant message, or the stop reason when no usable answer came.
"""

from __future__ import annotations

import msgspec

from agents._calls import note_model_error
from agents._model_call import llm_for_step
from agents._turn import StepOutcome, Turn
from agents.llm import ContextWindowExceeded, LLMError, LLMInvalidResponse, LLMResponse
from agents.summarizer import ContextOverflow, compact
from agents.tokens import request_chars
from agents.tools.registry import AgentTool, agent_tools
from storage.records import Message, ToolCall
from storage.step_reads import read_step

__all__ = ("Asked", "ask_model")


class Asked(msgspec.Struct, kw_only=True):
    """The model's answer for one step.

    Attributes:
        response: the answer as the model gave it.
        assistant: the step's assistant message (its text, its calls with ids, its reasoning).
        calls: the answer's tool calls, each with an id.
        tools: the agent's tools by name, as offered for this step.
    """

    response: LLMResponse
    assistant: Message
    calls: list[ToolCall]
    tools: dict[str, AgentTool]


async def ask_model(
    turn: Turn, pending: list[Message], step: int, step_id: str
) -> Asked | StepOutcome:
    """The model's answer for ``step``, or the outcome that stops the turn without one."""
    rt = turn.rt
    # Others (the API, a workflow re-apply) may have changed the agent's settings; the fields
    # this turn manages itself come from the turn, not from the stored record.
    if step != turn.loaded_at_step:
        fresh, turn.agent_raw = await rt.agents.get_raw(turn.agent.id)
        turn.agent = turn.own_fields(fresh)
    agent = turn.agent
    reads, turn.preloaded = turn.preloaded or await read_step(rt.redis, agent), None
    blocks = turn.blocks = reads.blocks
    tools = agent_tools(agent, reads.tools)
    offered = rt.gate.offered(agent, turn.state, list(tools))
    schemas = [turn.policy.tool_entry(tools[name]) for name in offered if name in tools]
    build = turn.builder(blocks, await turn.stats(reads.message_count, reads.archive_ids), schemas)
    committed = reads.messages

    response: LLMResponse | None = None
    sink = turn.token_stream(step_id)
    for attempt in range(2):
        # This turn's own messages stay: the model must see the results it asked for.
        split = next(
            (i for i, m in enumerate(committed) if m.run_id == turn.run.id), len(committed)
        )
        older, current = committed[:split], committed[split:]
        try:
            compaction = await compact(
                agent=turn.agent,
                committed=older,
                pending=[*current, *pending],
                build=build,
                counter=turn.counter,
                llm=turn.llm,
                now=rt.clock(),
                force=attempt > 0,
            )
        except ContextOverflow as exc:
            return StepOutcome(
                messages=pending, stop="context_window_overflow_in_system_prompt", detail=str(exc)
            )
        if compaction.evicted:
            turn.agent = msgspec.structs.replace(
                compaction.agent,
                message_ids=[*compaction.agent.message_ids, *(m.id for m in current)],
            )
            committed = [*compaction.kept, *current]
            turn.run.usage.add(compaction.prompt_tokens, compaction.completion_tokens)
        if compaction.request is not None:  # built and measured for the count: as it is
            (request, request_tools), chars = compaction.request, compaction.chars
        else:
            request, request_tools = build(turn.agent, [*committed, *pending])
            chars = request_chars(request, request_tools)
        try:
            response = await llm_for_step(turn, step, request, request_tools, sink)
        except ContextWindowExceeded as exc:
            if attempt == 0:
                continue
            await note_model_error(turn, exc)
            return StepOutcome(
                messages=pending,
                stop="context_window_overflow_in_system_prompt",
                detail=f"the model refused the context as too long, even after evicting old "
                f"messages: {exc}",
            )
        except LLMInvalidResponse as exc:
            await note_model_error(turn, exc)
            return StepOutcome(messages=pending, stop="invalid_llm_response", detail=str(exc))
        except LLMError as exc:
            await note_model_error(turn, exc)
            return StepOutcome(messages=pending, stop="llm_api_error", detail=str(exc))
        turn.counter.observe(request, request_tools, response.prompt_tokens, chars=chars)
        break
    assert response is not None
    usage = turn.run.usage
    usage.add(response.prompt_tokens, response.completion_tokens)
    usage.step_count += 1
    calls = [
        c if c.id else msgspec.structs.replace(c, id=f"call-{step_id}-{i}")
        for i, c in enumerate(response.tool_calls)
    ]
    assistant = turn.message(
        "assistant",
        step_id,
        sink.message_id if sink is not None else None,
        content=response.content,
        tool_calls=calls,
        reasoning=response.reasoning,
    )
    return Asked(response=response, assistant=assistant, calls=calls, tools=tools)
