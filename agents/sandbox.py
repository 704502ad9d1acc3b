"""Runs untrusted tool source out of process, with limits, as an unprivileged user, contained.

Tool source that arrives over the API (Letta's ``upsert_from_function``) never runs in the
server. :func:`run_tool_source` starts ``python -I -B -c <runner>`` (one launch path, which
takes the interpreter: per-tool environments plug in there) in a new session with a minimal
environment (``PATH``, ``HOME``, ``TMPDIR``, ``LANG`` and what the caller passes: never the
server's keys). The runner (:mod:`agents._sandbox_runner`) joins the call's pids cgroup,
enters new mount and network namespaces, drops to the tool user, lowers its resource limits,
then reads one JSON request from stdin, runs the function and writes one JSON reply to a
private pipe, so whatever the tool prints cannot corrupt the protocol.

What the host allows is probed once (:func:`default_isolation`, see
:mod:`agents._sandbox_host`); what is missing is logged once as ``sandbox_weaker_isolation``.
When the call ends (returned, timed out, or its caller cancelled) every process of it is
killed: its process group, and with a cgroup every member, even one that left the group. The
work folder is removed. Every outcome comes back as a :class:`SandboxResult`; a limit the call
ran into is named in its error (``(sandbox limit max_processes=64)``) and in ``limit``, counted
(:func:`limit_violations`, reported in the worker's health record) and logged as
``tool_limit_exceeded``. Only a failure to start the interpreter raises ``OSError``.
``docs/security.md`` has the threat model.
"""

from __future__ import annotations

import collections
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import anyio
import anyio.abc
import msgspec
import structlog

from agents._sandbox_config import NetworkPolicy, SandboxLimits, SandboxSettings
from agents._sandbox_host import CallGroup, Isolation, count_processes, exposed_paths, probe
from agents._sandbox_io import (
    Capture,
    child_env,
    drain,
    drain_fd,
    feed,
    kill_group,
    open_api_relay,
    serve_api_relay,
)
from agents._sandbox_runner import RUNNER

__all__ = (
    "Isolation",
    "SandboxLimits",
    "SandboxResult",
    "SandboxSettings",
    "default_isolation",
    "limit_violations",
    "run_tool_source",
)

_MB = 1024 * 1024
_PRIVATE_DIRS = ("/tmp", "/var/tmp", "/dev/shm")
_RELAY_SOCKET = ".memgrid-api.sock"
_TRIAL = "def trial():\n    import inspect, json, socket\n    return 'ok'\n"

log = structlog.get_logger("memgrid.sandbox")
_violations: collections.Counter[str] = collections.Counter()
_default: Isolation | None = None


class SandboxResult(msgspec.Struct, frozen=True, kw_only=True):
    """What one tool run produced.

    Attributes:
        status: ``"success"`` when the function returned, ``"error"`` otherwise.
        return_value: The return value as text: ``str()`` of it, ``"None"`` for None, JSON for
            dicts, lists and tuples; None when the run failed.
        stdout: What the tool printed to stdout (truncated to ``max_output_bytes``).
        stderr: What the tool printed to stderr (truncated likewise).
        error: A short message on failure: the exception type and message with the last line
            of the tool source in its traceback, or ``timed out after Ns``, ``exceeded memory
            limit ...``, ``exceeded CPU limit ...``, ``killed by signal N (NAME)``.
        limit: The name of the :class:`SandboxLimits` field the call ran into, if any (the
            error names it too); counted in :func:`limit_violations`.
        duration_s: Wall time of the run, start of the child to cleanup.
        exit_code: The child's exit status (negative: killed by that signal); None if unknown.
    """

    status: Literal["success", "error"]
    return_value: str | None = None
    stdout: str = ""
    stderr: str = ""
    error: str | None = None
    limit: str | None = None
    duration_s: float = 0.0
    exit_code: int | None = None


class _Reply(msgspec.Struct, frozen=True):
    status: Literal["success", "error"]
    return_value: str | None = None
    error: str | None = None
    limit: str | None = None


_reply_decoder = msgspec.json.Decoder(_Reply)


def _failure(exit_code: int | None) -> tuple[str, str | None]:
    if exit_code is None:
        return "the tool did not report a result", None
    if exit_code < 0:
        number = -exit_code
        if number == signal.SIGXCPU:
            return "exceeded its CPU time", "cpu_s"
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = "unknown"
        return f"killed by signal {number} ({name})", None
    return f"exited with code {exit_code} without a result", None


def _named(error: str, limit: str, limits: SandboxLimits) -> str:
    return f"{error} (sandbox limit {limit}={getattr(limits, limit):g})"


def limit_violations() -> dict[str, int]:
    """How many calls in this process ran into each limit (for worker health counters)."""
    return dict(_violations)


async def default_isolation(settings: SandboxSettings | None = None) -> Isolation:
    """The isolation this host offers, probed on first use (with ``settings``' user and
    cgroup, else the environment's); later calls get the same answer.

    The probe ends with a trial run: if the tool user cannot run the interpreter (say it lives
    under ``/root`` and there is no mount namespace to expose it), tools run as the server's
    user instead, and the log says so.
    """
    global _default  # one probe per process: the host does not change
    if _default is None:
        found = await anyio.to_thread.run_sync(probe, settings or SandboxSettings.from_env())
        if found.uid is not None:
            trial = await run_tool_source(_TRIAL, "trial", {}, isolation=found)
            if trial.return_value != "ok":
                note = (
                    f"the tool user (uid {found.uid}) cannot run {sys.executable}: tools run "
                    f"as the server's user ({trial.error}: {trial.stderr[-300:]})"
                )
                log.warning("sandbox_weaker_isolation", missing=[note])
                found = msgspec.structs.replace(
                    found, uid=None, gid=None, notes=(*found.notes, note)
                )
        _default = found
    return _default


def _api_target(env: Mapping[str, str]) -> tuple[str, int, str] | None:
    """The API's host and port, and its URL as a tool inside a network namespace sees it."""
    url = env.get("MEMGRID_API_URL")
    if not url:
        return None
    parts = urlsplit(url)
    if not parts.hostname:
        return None
    port = parts.port or (443 if parts.scheme == "https" else 80)
    inside = urlunsplit(parts._replace(netloc=f"127.0.0.1:{port}"))
    return parts.hostname, port, inside


async def run_tool_source(
    source: str,
    function_name: str,
    arguments: dict[str, Any],
    *,
    agent_state: Mapping[str, Any] | None = None,
    limits: SandboxLimits = SandboxLimits(),  # noqa: B008 (frozen, so sharing it is safe)
    env: Mapping[str, str] | None = None,
    python: str = sys.executable,
    network: NetworkPolicy = "all",
    hide: Sequence[str] = (),
    isolation: Isolation | None = None,
) -> SandboxResult:
    """Runs ``function_name`` from untrusted ``source`` in a limited child process.

    Args:
        source: Python source that defines the function (and may import installed packages).
        function_name: The function to call after the source is executed.
        arguments: Keyword arguments for the call; must be JSON-encodable.
        agent_state: Passed as ``agent_state`` (nested mappings become ``SimpleNamespace``
            objects, so ``agent_state.id`` works) when the function has that parameter.
        limits: The call's limits (see :class:`SandboxLimits`).
        env: Extra environment variables for the child, e.g. ``MEMGRID_API_URL``. Nothing
            else of the server's environment is passed on.
        python: The interpreter to run; its installed packages are importable by the tool.
        network: ``all``, ``api`` (only ``MEMGRID_API_URL`` of ``env``) or ``none``; enforced
            where ``isolation`` has a network namespace.
        hide: Folders the tool must not see (``MEMGRID_HOME``), covered by an empty read-only
            tmpfs where ``isolation`` has a mount namespace.
        isolation: What the host offers; default: probed once from the environment.

    Returns:
        The outcome; failures of the tool, its limits and crashes of the child are reported
        in it with ``status="error"``.

    Raises:
        OSError: The interpreter could not be started.
        TypeError: ``arguments`` or ``agent_state`` cannot be encoded as JSON.
    """
    iso = isolation if isolation is not None else await default_isolation()
    request = msgspec.json.encode(
        {
            "source": source,
            "function": function_name,
            "arguments": arguments,
            "agent_state": dict(agent_state) if agent_state is not None else None,
        }
    )
    cap = limits.max_output_bytes
    out, err = Capture(cap), Capture(cap)
    # The reply holds a capped return value; JSON escaping can grow it a few times over.
    reply = Capture(8 * cap + 65536)
    started = time.perf_counter()
    workdir = tempfile.mkdtemp(prefix="memgrid-tool-")
    owner = (iso.uid, iso.gid or 0) if iso.uid is not None else None
    groups: list[CallGroup] = []
    read_fd = -1
    process: anyio.abc.Process | None = None
    relay_listener: anyio.abc.SocketListener | None = None
    deadline = anyio.CancelScope()
    try:
        if owner is not None:
            os.chown(workdir, *owner)
        groups = await anyio.to_thread.run_sync(_call_groups, iso, limits)
        nproc = 0
        if iso.cgroup is None and (owner is not None or os.geteuid() != 0):
            uid = owner[0] if owner is not None else os.geteuid()
            nproc = await anyio.to_thread.run_sync(count_processes, uid)
            nproc += limits.max_processes
        netns = iso.netns and network != "all"
        extra = dict(env or {})
        api = _api_target(extra) if netns and network == "api" else None
        inside = "/tmp" if iso.mountns else workdir
        if api is not None:
            extra.update(MEMGRID_API_URL=api[2], LETTA_BASE_URL=api[2])
            # Listening before the tool starts, so that its first connection finds the relay.
            relay_listener = await open_api_relay(os.path.join(workdir, _RELAY_SOCKET), owner)
        read_fd, write_fd = os.pipe()
        os.set_blocking(read_fd, False)
        setup = {
            "fd": write_fd,
            "cap": cap,
            "memory": limits.memory_mb * _MB,
            "cpu": limits.cpu_s,
            "fsize": limits.max_file_mb * _MB,
            "nofile": limits.max_open_files,
            "nproc": nproc,
            "cgroups": [group.procs for group in groups],
            "netns": netns,
            "mountns": iso.mountns,
            "workdir": workdir,
            "private_dirs": list(_PRIVATE_DIRS),
            "hidden_dirs": list(hide),
            "expose": (
                exposed_paths(python, _PRIVATE_DIRS, owner is not None, hide) if iso.mountns else ()
            ),
            "cwd": inside,
            "uid": owner[0] if owner is not None else -1,
            "gid": owner[1] if owner is not None else -1,
            "relay_port": api[1] if api is not None else 0,
            "relay_socket": os.path.join(inside, _RELAY_SOCKET),
        }
        try:
            process = await anyio.open_process(
                [python, "-I", "-B", "-c", RUNNER, json.dumps(setup)],
                cwd=workdir,
                env=child_env(inside, extra),
                start_new_session=True,
                pass_fds=(write_fd,),
            )
        finally:
            os.close(write_fd)
        async with anyio.create_task_group() as relay:
            if api is not None and relay_listener is not None:  # the tool's way to the API
                relay.start_soon(serve_api_relay, relay_listener, api[0], api[1])
            with anyio.move_on_after(limits.timeout_s) as deadline:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(feed, process.stdin, request)
                    tg.start_soon(drain, process.stdout, out)
                    tg.start_soon(drain, process.stderr, err)
                    tg.start_soon(drain_fd, read_fd, reply)
                    await process.wait()
                    # Subprocesses the tool left behind would hold the pipes open.
                    await _end_call(process, groups)
            relay.cancel_scope.cancel()
    finally:
        with anyio.CancelScope(shield=True):
            if relay_listener is not None:
                await relay_listener.aclose()
            if process is not None:
                await _end_call(process, groups)
                await process.aclose()
            else:
                for group in groups:
                    await anyio.to_thread.run_sync(group.kill_all)
            if read_fd >= 0:
                os.close(read_fd)
            await anyio.to_thread.run_sync(shutil.rmtree, workdir, True)
    return _result(process, deadline, reply, out, err, groups, limits, started, function_name)


def _call_groups(iso: Isolation, limits: SandboxLimits) -> list[CallGroup]:
    groups: list[CallGroup] = []
    try:
        if iso.cgroup is not None:
            groups.append(CallGroup.create(iso.cgroup, "pids", limits.max_processes))
        if iso.memory_cgroup is not None:
            groups.append(CallGroup.create(iso.memory_cgroup, "memory", limits.memory_mb * _MB))
    except OSError:
        for group in groups:
            group.remove()
        raise
    return groups


async def _end_call(process: anyio.abc.Process, groups: list[CallGroup]) -> None:
    """Kills every process of the call: its process group, then with cgroups every member
    (those that left the group too), else the group again until no live member is left."""
    kill_group(process.pid)
    for group in groups:
        await anyio.to_thread.run_sync(group.kill_all)
    if not groups:
        await process.wait()
        await anyio.to_thread.run_sync(kill_group, process.pid, 2.0)


def _result(
    process: anyio.abc.Process | None,
    deadline: anyio.CancelScope,
    reply: Capture,
    out: Capture,
    err: Capture,
    groups: list[CallGroup],
    limits: SandboxLimits,
    started: float,
    tool: str,
) -> SandboxResult:
    exit_code = process.returncode if process is not None else None
    error, limit = _failure(exit_code)
    parsed = _Reply(status="error", error=error, limit=limit)
    if deadline.cancelled_caught:
        parsed = _Reply(
            status="error", error=f"timed out after {limits.timeout_s:g}s", limit="timeout_s"
        )
    elif reply.dropped:
        parsed = _Reply(
            status="error", error="the tool's result was too large", limit="max_output_bytes"
        )
    elif reply.data:
        try:
            parsed = _reply_decoder.decode(reply.data)
        except msgspec.DecodeError:
            parsed = _Reply(status="error", error="the tool's result was malformed")
    for group in groups:
        if not group.hit_limit():
            continue
        # The cgroup refused a fork or OOM-killed a process: that is the violation, whatever
        # the tool made of it (a bomb that catches the error would otherwise report success).
        what = parsed.error if parsed.status == "error" else "it returned anyway"
        if group.controller == "pids":
            error = f"the tool tried to run more processes or threads than allowed; {what}"
            parsed = _Reply(status="error", error=error, limit="max_processes")
        else:
            error = f"the tool's processes together ran out of memory; {what}"
            parsed = _Reply(status="error", error=error, limit="memory_mb")
        break
    message = parsed.error
    if parsed.limit is not None and message is not None:
        message = _named(message, parsed.limit, limits)
        _violations[parsed.limit] += 1
        log.warning("tool_limit_exceeded", tool=tool, limit=parsed.limit, error=message)
    return SandboxResult(
        status=parsed.status,
        return_value=parsed.return_value if parsed.status == "success" else None,
        stdout=out.text(),
        stderr=err.text(),
        error=message,
        limit=parsed.limit,
        duration_s=time.perf_counter() - started,
        exit_code=exit_code,
    )
