"""Tools for messaging other agents, routed and checked by :mod:`agents.messaging`."""

from __future__ import annotations

from agents.messaging import AwaitReplies, Messaging
from agents.tools.base import ToolContext, ToolError

__all__ = (
    "MULTI_AGENT_TOOL_NAMES",
    "send_message_to_agent_and_wait_for_reply",
    "send_message_to_agent_async",
    "send_message_to_agents_matching_tags",
)

MULTI_AGENT_TOOL_NAMES = (
    "send_message_to_agent_and_wait_for_reply",
    "send_message_to_agent_async",
    "send_message_to_agents_matching_tags",
)


def _messaging(ctx: ToolContext) -> Messaging:
    if not isinstance(ctx.messaging, Messaging):
        raise ToolError("messaging other agents is not available here")
    return ctx.messaging


async def send_message_to_agent_and_wait_for_reply(
    ctx: ToolContext, message: str, other_agent_id: str
) -> str:
    """Send a message to another agent and wait for its reply, which becomes this tool's result.

    Args:
        message: The message to send; say who you are and what you need.
        other_agent_id: The id or name of the agent to message.
    """
    messaging = _messaging(ctx)
    target = await messaging.resolve(other_agent_id)
    await messaging.check(target, waiting=True)
    wait = await messaging.wait_for(
        [target], message, ctx.call_id, "send_message_to_agent_and_wait_for_reply"
    )
    raise AwaitReplies(wait)


async def send_message_to_agent_async(ctx: ToolContext, message: str, other_agent_id: str) -> str:
    """Send a message to another agent without waiting; its reply will not come back here.

    Args:
        message: The message to send.
        other_agent_id: The id or name of the agent to message.
    """
    messaging = _messaging(ctx)
    target = await messaging.resolve(other_agent_id)
    await messaging.check(target, waiting=False)
    run_id = await messaging.submit(target, message, ctx.call_id, reply_to=None)
    return f"Message sent to agent {target.name!r} (run {run_id}); it answers on its own time."


async def send_message_to_agents_matching_tags(
    ctx: ToolContext, message: str, match_all: list[str], match_some: list[str]
) -> str:
    """Send a message to every agent with the given tags, in parallel, and gather their replies.

    Args:
        message: The message to send.
        match_all: Tags an agent must all have (may be empty).
        match_some: Tags of which an agent must have at least one (may be empty).
    """
    messaging = _messaging(ctx)
    if not match_all and not match_some:
        raise ToolError("give match_all or match_some tags; messaging every agent is not allowed")
    candidates = await messaging.rt.agents.list(
        tags=match_all or match_some, match_all_tags=bool(match_all)
    )
    targets = [
        a
        for a in candidates
        if a.id != messaging.agent.id
        and set(match_all) <= set(a.tags)
        and (not match_some or set(match_some) & set(a.tags))
    ]
    if not targets:
        raise ToolError(
            f"no other agent has all of {match_all} and one of {match_some}; check the tags"
        )
    for target in targets:
        await messaging.check(target, waiting=True)
    wait = await messaging.wait_for(
        targets, message, ctx.call_id, "send_message_to_agents_matching_tags"
    )
    raise AwaitReplies(wait)
