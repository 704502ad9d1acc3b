"""Offline token counting: a conservative estimate, corrected by what the provider reports.

No tokenizer ships for every model, so the estimate counts characters of the serialized
request (about 3 per token, fewer than the ~4 of English text with GPT tokenizers, so that we
over-count rather than overflow). After each call, the provider's ``prompt_tokens`` for the
request we sent gives the real ratio; :class:`TokenCounter` keeps the larger of the two.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

__all__ = ("CHARS_PER_TOKEN", "TokenCounter", "estimate_tokens", "request_chars")

CHARS_PER_TOKEN = 3.0
_PER_MESSAGE = 4
_encoder = msgspec.json.Encoder()


def _chars(value: Any) -> int:
    return len(_encoder.encode(value))


def request_chars(
    messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]] = ()
) -> int:
    """The serialized size of a chat request (messages plus tool schemas), in characters."""
    return sum(_chars(m) for m in messages) + sum(_chars(t) for t in tools)


def estimate_tokens(
    messages: Sequence[Mapping[str, Any]],
    tools: Sequence[Mapping[str, Any]] = (),
    *,
    chars_per_token: float = CHARS_PER_TOKEN,
    chars: int | None = None,
) -> int:
    """A conservative token count of a chat request (messages plus tool schemas); ``chars``:
    its :func:`request_chars`, when the caller has it."""
    if chars is None:
        chars = request_chars(messages, tools)
    return int(chars / chars_per_token) + _PER_MESSAGE * len(messages) + 8


class TokenCounter:
    """Estimates tokens, calibrated by the provider's reported prompt sizes."""

    def __init__(self, chars_per_token: float = CHARS_PER_TOKEN) -> None:
        self.chars_per_token = chars_per_token

    def count(
        self,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]] = (),
        *,
        chars: int | None = None,
    ) -> int:
        """:func:`estimate_tokens` at this counter's ratio."""
        return estimate_tokens(messages, tools, chars_per_token=self.chars_per_token, chars=chars)

    def observe(
        self,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]],
        reported_prompt_tokens: int,
        *,
        chars: int | None = None,
    ) -> None:
        """Tighten the ratio when the provider counted more tokens than we estimated
        (``chars``: the request's :func:`request_chars`, when the caller has it)."""
        if reported_prompt_tokens <= 0:
            return
        if chars is None:
            chars = request_chars(messages, tools)
        observed = chars / reported_prompt_tokens
        # Only ever move towards over-counting: a denser tokenizer than we assumed.
        if observed < self.chars_per_token:
            self.chars_per_token = max(observed, 1.0)
