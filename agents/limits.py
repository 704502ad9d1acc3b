"""What a client may send an agent: inputs too large to store or to ever fit the agent's
context window are refused before anything is queued, with an error naming the limit.

::

    InvalidRecord (storage)
    ├── MessageTooLarge   over ``MEMGRID_MAX_MESSAGE_BYTES`` (the API answers 413)
    └── MessageTooLong    cannot fit the agent's context window even alone (the API: 422)
"""

from __future__ import annotations

from agents.tokens import TokenCounter
from storage.errors import InvalidRecord
from storage.records import Agent

__all__ = ("MessageTooLarge", "MessageTooLong", "check_message")


class MessageTooLarge(InvalidRecord):
    """A message over the size limit; the message names the limit and its setting."""


class MessageTooLong(InvalidRecord):
    """A message that can never fit the agent's context window, even with nothing else."""


def check_message(agent: Agent, text: str, *, max_bytes: int, counter: TokenCounter) -> None:
    """Refuse ``text`` as a new message for ``agent`` when it is too large.

    The window check counts the message with the agent's system prompt only (conservatively,
    like the step loop): what else the window holds can be evicted, those two cannot.

    Raises:
        MessageTooLarge: more than ``max_bytes`` bytes of UTF-8.
        MessageTooLong: more tokens than the agent's context window.
    """
    size = len(text.encode("utf-8", errors="surrogatepass"))
    if size > max_bytes:
        raise MessageTooLarge(
            f"the message has {size} bytes, over the limit of {max_bytes} bytes "
            "(MEMGRID_MAX_MESSAGE_BYTES); send it in parts or as a file to a source, or "
            "raise the limit"
        )
    request = [{"role": "system", "content": agent.system}, {"role": "user", "content": text}]
    tokens = counter.count(request)
    if tokens > agent.context_window:
        raise MessageTooLong(
            f"the message needs about {tokens} tokens with the system prompt, more than the "
            f"agent's context window of {agent.context_window} tokens; send it in parts, or "
            "raise the agent's context_window"
        )
