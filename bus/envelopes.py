"""Versioned envelopes carried by the streams (msgspec, JSON on the wire).

Every envelope has ``v`` (schema version) and a ``kind`` tag, so that a newer worker can read
what an older API process wrote and unknown kinds are refused cleanly.
"""

from __future__ import annotations

import time
from typing import Literal

import msgspec

__all__ = (
    "ENVELOPE_VERSION",
    "Envelope",
    "InboxMessage",
    "RunRequest",
    "decode_envelope",
    "encode_envelope",
)

ENVELOPE_VERSION = 1


class InboxMessage(msgspec.Struct, frozen=True, kw_only=True):
    """One input message of a run.

    ``role="approval"`` answers a run stopped with ``requires_approval``: ``content`` is JSON
    ``{"approve": bool, "reason": str | null}``.
    """

    content: str
    role: Literal["user", "system", "approval"] = "user"
    otid: str | None = None
    sender_id: str | None = None


class RunRequest(msgspec.Struct, frozen=True, kw_only=True, tag="run", tag_field="kind"):
    """Start a run of ``agent_id`` on ``messages`` (the run record already exists)."""

    v: int = ENVELOPE_VERSION
    run_id: str
    agent_id: str
    messages: tuple[InboxMessage, ...]
    enqueued_at: float = msgspec.field(default_factory=time.time)
    max_steps: int | None = None  # this request's cap on steps, below the agent's own


Envelope = RunRequest

_encoder = msgspec.json.Encoder()
_decoder: msgspec.json.Decoder[Envelope] = msgspec.json.Decoder(Envelope)


def encode_envelope(envelope: Envelope) -> bytes:
    return _encoder.encode(envelope)


def decode_envelope(data: bytes) -> Envelope:
    """Decode an envelope; raises ``msgspec.ValidationError`` naming what is wrong."""
    return _decoder.decode(data)
