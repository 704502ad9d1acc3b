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
from collections.abc import Mapping
from functools import partial

import anyio
import anyio.abc
from anyio.abc import TaskStatus

__all__ = ("Capture", "child_env", "drain", "drain_fd", "feed", "kill_group", "serve_api_relay")

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


def kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


async def feed(stream: anyio.abc.ByteSendStream | None, data: bytes) -> None:
    if stream is None:
        return
    try:
        await stream.send(data)
    except (anyio.BrokenResourceError, anyio.ClosedResourceError):
        pass  # the child died before reading its request; its exit status tells why
    finally:
        await stream.aclose()


async def drain(stream: anyio.abc.ByteReceiveStream | None, capture: Capture) -> None:
    if stream is None:
        return
    async for chunk in stream:
        capture.add(chunk)


async def drain_fd(fd: int, capture: Capture) -> None:
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


async def serve_api_relay(
    path: str,
    host: str,
    port: int,
    owner: tuple[int, int] | None,
    *,
    task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Accepts the tool's connections on the Unix socket ``path`` and joins each to the API.

    Args:
        path: Where to listen (inside the call's work folder).
        host: The API's host.
        port: The API's port.
        owner: uid and gid to give the socket, so a tool user may connect.
    """
    listener = await anyio.create_unix_listener(path)
    async with listener:
        if owner is not None:
            os.chown(path, *owner)
        task_status.started()
        await listener.serve(partial(_relay_one, host, port))
