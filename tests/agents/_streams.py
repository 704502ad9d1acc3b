"""What the streamed-completion tests of the HTTP and in-process models share: a prompt, an
answer with two tool calls, and a sink that records the deltas handed on."""

from __future__ import annotations

from collections.abc import Sequence

from agents._streaming import CallDelta
from agents.scripted import call, tool_calls

__all__ = ("ANSWER", "HELLO", "Sink")

HELLO = [{"role": "user", "content": "hello"}]
ANSWER = tool_calls(
    call("send_message", message="Hi Bob, nice to meet you", id="call_a"),
    call("core_memory_append", label="human", content="Name: Bob", id="call_b"),
    thought="The user said their name.",
)


class Sink:
    """Records what a streamed call hands on, attempt by attempt (a
    :class:`~agents._streaming.DeltaSink`)."""

    def __init__(self) -> None:
        self.attempts: list[list[tuple[str, list[CallDelta]]]] = []

    def restart(self) -> None:
        self.attempts.append([])

    async def chunk(self, content: str, calls: Sequence[CallDelta], reasoning: str = "") -> None:
        self.attempts[-1].append((content, list(calls)))
