"""Typed settings of storage, read from the environment in one place."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import msgspec

from storage.errors import InvalidSetting

__all__ = ("DEFAULT_EMBEDDING", "StorageSettings")

DEFAULT_EMBEDDING = "local/all-MiniLM-L6-v2"
_MAX_MESSAGE_BYTES = 1024 * 1024
_BLOCK_HISTORY_MAX = 100
_RUN_TTL_S = 30 * 24 * 3600
_EVENTS_TTL_S = 24 * 3600
_OPEN_EVENTS_TTL_S = 7 * 24 * 3600


class StorageSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Where passages live, which embedder to use, what is kept and how much is accepted.

    Attributes:
        home: ``MEMGRID_HOME`` (default ``./.memgrid``); the embedded Qdrant engine keeps its
            data under ``home / "qdrant"``.
        qdrant_url: ``MEMGRID_QDRANT_URL``: use a Qdrant server instead of the embedded engine.
        qdrant_api_key: ``MEMGRID_QDRANT_API_KEY`` for that server.
        embedding: ``MEMGRID_EMBEDDING``: the default embedding handle for new agents
            (``local/all-MiniLM-L6-v2`` or e.g. ``openai/text-embedding-3-small``).
        openai_base_url: ``OPENAI_BASE_URL`` for remote embedders.
        openai_api_key: ``OPENAI_API_KEY`` for remote embedders.
        max_message_bytes: ``MEMGRID_MAX_MESSAGE_BYTES`` (default 1 MiB): the largest message
            (UTF-8 bytes of its text) a client may send an agent; larger ones are refused.
        block_history_max: ``MEMGRID_BLOCK_HISTORY_MAX`` (default 100): how many of a block's
            latest versions its history keeps; older entries are dropped at each write.
        run_ttl_s: ``MEMGRID_RUN_TTL_S`` (default 30 days): how long a finished run's record
            (and its place in the agent's run list) is kept.
        events_ttl_s: ``MEMGRID_EVENTS_TTL_S`` (default 1 day): how long a finished run's
            event stream is kept.
        open_events_ttl_s: ``MEMGRID_OPEN_EVENTS_TTL_S`` (default 7 days): how long the event
            stream of a run that has not finished is kept after its last event (a run that
            never finishes must not keep it forever).
    """

    home: Path = Path(".memgrid")
    qdrant_url: str | None = None
    qdrant_api_key: str | None = None
    embedding: str = DEFAULT_EMBEDDING
    openai_base_url: str | None = None
    openai_api_key: str | None = None
    max_message_bytes: int = _MAX_MESSAGE_BYTES
    block_history_max: int = _BLOCK_HISTORY_MAX
    run_ttl_s: int = _RUN_TTL_S
    events_ttl_s: int = _EVENTS_TTL_S
    open_events_ttl_s: int = _OPEN_EVENTS_TTL_S

    def describe_passages(self) -> str:
        """Where archival passages live, for start-up banners and messages."""
        if self.qdrant_url:
            return f"the Qdrant server at {self.qdrant_url}"
        return f"the embedded Qdrant engine under {self.home / 'qdrant'}"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> StorageSettings:
        """Settings from the environment.

        Raises:
            InvalidSetting: a number that does not parse or is out of range.
        """
        env = os.environ if environ is None else environ
        return cls(
            home=Path(env.get("MEMGRID_HOME") or ".memgrid").expanduser().absolute(),
            qdrant_url=env.get("MEMGRID_QDRANT_URL") or None,
            qdrant_api_key=env.get("MEMGRID_QDRANT_API_KEY") or None,
            embedding=env.get("MEMGRID_EMBEDDING") or DEFAULT_EMBEDDING,
            openai_base_url=env.get("OPENAI_BASE_URL") or None,
            openai_api_key=env.get("OPENAI_API_KEY") or None,
            max_message_bytes=_int(env, "MEMGRID_MAX_MESSAGE_BYTES", _MAX_MESSAGE_BYTES, 1),
            block_history_max=_int(env, "MEMGRID_BLOCK_HISTORY_MAX", _BLOCK_HISTORY_MAX, 1),
            run_ttl_s=_int(env, "MEMGRID_RUN_TTL_S", _RUN_TTL_S, 1),
            events_ttl_s=_int(env, "MEMGRID_EVENTS_TTL_S", _EVENTS_TTL_S, 1),
            open_events_ttl_s=_int(env, "MEMGRID_OPEN_EVENTS_TTL_S", _OPEN_EVENTS_TTL_S, 1),
        )


def _int(env: Mapping[str, str], name: str, default: int, low: int) -> int:
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidSetting(
            f"{name}={raw!r} is not a whole number; unset it or use e.g. {default}"
        ) from None
    if value < low:
        raise InvalidSetting(f"{name}={raw!r} must be at least {low}")
    return value
