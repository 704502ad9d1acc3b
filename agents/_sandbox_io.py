"""The sandbox's plumbing: output capture, the child's pipes, and the API relay for ``api``.

Under ``MEMGRID_SANDBOX_NETWORK=api`` the tool lives in a network namespace with loopback only.
The runner listens there on ``127.0.0.1:<the API's port>`` and passes each connection through a
Unix socket in the call's work folder (a path works across network namespaces) to
:func:`serve_api_relay`, which connects it to the API and nowhere else.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Mapping
from functools import partial

import anyio
import anyio.abc

__all__ = (
    "Capture",
    "child_env",
    "drain",
    "drain_fd",
    "feed",
    "kill_group",
    "open_api_relay",
    "serve_api_relay",
)

_STREAM_GONE = (anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.EndOfStream, OSError)


class Capture:
    """Keeps the first ``cap`` bytes of a stream and counts the rest."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.data = bytearray()
        self.dropped = 0

    def add(self, chunk: bytes) -> None:
        room = max(self.cap - len(self.data), 0)
        self.data += chunk[:room]
        self.dropped += max(len(chunk) - room, 0)

    def text(self) -> str:
        text = self.data.decode("utf-8", "replace")
        if self.dropped:
            text += f"\n[truncated {self.dropped} bytes]"
        return text


def child_env(home: str, extra: Mapping[str, str] | None) -> dict[str, str]:
    """The tool's whole environment: a few neutral variables, ``HOME`` and ``extra``."""
    # One BLAS/OpenMP thread each: thread stacks count against RLIMIT_AS and tools are small.
    env = {
        "PATH": os.environ.get("PATH", os.defpath),
        "HOME": home,
        "TMPDIR": home,
        "LANG": "C.UTF-8",
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
    }
    env.update(extra or {})
    return env


def kill_group(pgid: int, timeout_s: float = 0.0) -> None:
    """SIGKILLs process group ``pgid``; with a timeout, again while it has live members
    (blocking). Repeating catches children forked while the first signal was on its way; the
    kernel keeps a group's id from being reused while any member exists, so it is safe."""
    end = time.monotonic() + timeout_s
    while True:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            return
        if time.monotonic() >= end or not _live_members(pgid):
            return  # zombies left are init's to reap; they hold no resources
        time.sleep(0.002)


def _live_members(pgid: int) -> bool:
    with os.scandir("/proc") as entries:
        for entry in entries:
            if entry.name.isdigit():
                try:
                    with open(f"/proc/{entry.name}/stat", "rb") as f:
                        fields = f.read().rsplit(b")", 1)[1].split()
                except OSError:
                    continue
                if int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
                    return True
    return False


async def feed(stream: anyio.abc.ByteSendStream | None, data: bytes) -> None:
    """Writes the request to the child's stdin and closes it."""
    if stream is None:
        return
    try:
        await stream.send(data)
    except (anyio.BrokenResourceError, anyio.ClosedResourceError):
        pass  # the child died before reading its request; its exit status tells why
    finally:
        await stream.aclose()


async def drain(stream: anyio.abc.ByteReceiveStream | None, capture: Capture) -> None:
    """Reads the child's stdout or stderr into ``capture`` until it closes."""
    if stream is None:
        return
    async for chunk in stream:
        capture.add(chunk)


async def drain_fd(fd: int, capture: Capture) -> None:
    """Reads the result pipe (non-blocking ``fd``) into ``capture`` until every writer is gone."""
    while True:
        await anyio.wait_readable(fd)
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            continue
        if not chunk:
            return
        capture.add(chunk)


async def _pump(src: anyio.abc.ByteStream, dst: anyio.abc.ByteStream) -> None:
    with contextlib.suppress(*_STREAM_GONE):
        async for chunk in src:
            await dst.send(chunk)
        await dst.send_eof()


async def _relay_one(host: str, port: int, client: anyio.abc.ByteStream) -> None:
    async with client:
        try:
            upstream = await anyio.connect_tcp(host, port)
        except OSError:
            return  # the tool sees a closed connection, as if the API were down
        async with upstream, anyio.create_task_group() as tg:
            tg.start_soon(_pump, client, upstream)
            await _pump(upstream, client)


async def open_api_relay(path: str, owner: tuple[int, int] | None) -> anyio.abc.SocketListener:
    """Listens on the Unix socket ``path`` (given to ``owner``, so a tool user may connect)."""
    listener = await anyio.create_unix_listener(path)
    if owner is not None:
        os.chown(path, *owner)
    return listener


async def serve_api_relay(listener: anyio.abc.SocketListener, host: str, port: int) -> None:
    """Joins each connection the tool makes to ``listener`` to the API at ``host:port``."""
    await listener.serve(partial(_relay_one, host, port))
