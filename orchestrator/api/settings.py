"""Settings of the REST API, read from the environment in one place.

================================  ==================================================  =========
variable                          meaning                                             default
================================  ==================================================  =========
``MEMGRID_API_HOST``              address to bind                                     127.0.0.1
``MEMGRID_API_PORT``              port to bind (Letta's)                              8283
``MEMGRID_API_KEY``               when set, every path but health needs
                                  ``Authorization: Bearer <key>``                     unset
``MEMGRID_API_CORS_ORIGINS``      comma-separated origins allowed by CORS             off
``MEMGRID_API_MAX_BODY_BYTES``    largest request body accepted (413 above)           4 MiB
``MEMGRID_API_RUN_TIMEOUT_S``     how long a waiting request follows a run            600
``MEMGRID_API_PING_INTERVAL_S``   a stream with ``include_pings`` sends a ping frame
                                  after this many seconds without a frame             10
``MEMGRID_SERVE_WORKER``          ``0`` turns the embedded worker off                 1
================================  ==================================================  =========
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import msgspec

from storage.errors import UserError

__all__ = ("DEFAULT_PORT", "ApiSettings", "ApiSettingsError")

DEFAULT_PORT = 8283


class ApiSettingsError(UserError, ValueError):
    """A setting has a value that cannot be used; the message names the variable."""


class ApiSettings(msgspec.Struct, frozen=True, kw_only=True):
    """How the API serves.

    Attributes:
        host: address to bind.
        port: port to bind.
        api_key: the bearer token clients must send; ``None`` leaves the API open.
        cors_origins: origins allowed by CORS; empty turns CORS off.
        max_body_bytes: the largest request body accepted.
        run_timeout_s: how long ``messages.create`` waits for a run before giving up.
        ping_interval_s: how long a stream with ``include_pings`` stays silent before a ping.
        worker: run a worker inside the API process, so that it answers messages alone.
        worker_concurrency: agents the embedded worker runs at once.
        redis_url: use this Redis instead of the configured (or local) one.
    """

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    api_key: str | None = None
    cors_origins: tuple[str, ...] = ()
    max_body_bytes: int = 4 * 1024 * 1024
    run_timeout_s: float = 600.0
    ping_interval_s: float = 10.0
    worker: bool = True
    worker_concurrency: int = 64
    redis_url: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ApiSettings:
        """Settings from ``MEMGRID_API_*`` and ``MEMGRID_SERVE_WORKER``.

        Raises:
            ApiSettingsError: a number that does not parse or is out of range.
        """
        env = os.environ if environ is None else environ
        origins = tuple(
            o.strip() for o in (env.get("MEMGRID_API_CORS_ORIGINS") or "").split(",") if o.strip()
        )
        return cls(
            host=env.get("MEMGRID_API_HOST") or "127.0.0.1",
            port=int(_number(env, "MEMGRID_API_PORT", DEFAULT_PORT, 0, 65535)),
            api_key=env.get("MEMGRID_API_KEY") or None,
            cors_origins=origins,
            max_body_bytes=int(_number(env, "MEMGRID_API_MAX_BODY_BYTES", 4 * 1024 * 1024, 1024)),
            run_timeout_s=_number(env, "MEMGRID_API_RUN_TIMEOUT_S", 600.0, 1.0),
            ping_interval_s=_number(env, "MEMGRID_API_PING_INTERVAL_S", 10.0, 0.05),
            worker=(env.get("MEMGRID_SERVE_WORKER") or "1").strip().lower()
            not in {"0", "false", "no", "off"},
        )


def _number(
    env: Mapping[str, str], name: str, default: float, low: float, high: float | None = None
) -> float:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ApiSettingsError(f"{name}={raw!r} is not a number") from None
    if value < low or (high is not None and value > high):
        bound = f"between {low:g} and {high:g}" if high is not None else f"at least {low:g}"
        raise ApiSettingsError(f"{name}={raw!r} must be {bound}")
    return value
