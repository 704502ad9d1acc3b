"""Runs untrusted tool source out of process, with CPU, memory, file and time limits.

Tool source that arrives over the API (Letta's ``upsert_from_function``) never runs in the
server. :func:`run_tool_source` starts ``python -I -B -c <runner>`` in a new session, in a fresh
temporary working directory, with a minimal environment (``PATH``, ``HOME``, ``TMPDIR``,
``LANG`` and what the caller passes: never the server's keys). The runner is a short stdlib-only
script: it lowers its own resource limits first (``RLIMIT_AS``, ``RLIMIT_CPU``,
``RLIMIT_FSIZE``, ``RLIMIT_NOFILE``, no core files), reads one JSON request from stdin, executes
the source as a fresh module, calls the function (awaiting it if it is a coroutine) and writes
one JSON reply to a private pipe (passed with ``pass_fds``), so whatever the tool prints to
stdout or stderr, even from its own subprocesses, cannot corrupt the protocol.

The wall-clock timeout, and cancellation of the caller, kill the whole process group; the
working directory is removed afterwards. Every outcome, including a crash of the child, comes
back as a :class:`SandboxResult`; only a failure to start the interpreter raises ``OSError``.

Limits of the isolation: the child runs as the server's user, may use the network (tools call
the memgrid REST API) and reads whatever that user can read. ``RLIMIT_NPROC`` is not set because
it counts every process of the user (and root ignores it). A root server should run tools under
a dedicated user or in a container for stronger isolation.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Mapping
from typing import Any, Literal

import anyio
import anyio.abc
import msgspec

__all__ = ("SandboxLimits", "SandboxResult", "run_tool_source")

_MB = 1024 * 1024
_TOOL_FILE = "<tool>"

_RUNNER = r"""
import os, resource, sys
_fd, _cpu, _mem, _fsize, _nofile, _cap = (int(a) for a in sys.argv[1:7])
FILE = %(file)r

def _limit(kind, soft, hard):
    cur = resource.getrlimit(kind)[1]
    if cur != resource.RLIM_INFINITY:
        soft, hard = min(soft, cur), min(hard, cur)
    resource.setrlimit(kind, (soft, hard))

_limit(resource.RLIMIT_CPU, _cpu, _cpu + 1)
_limit(resource.RLIMIT_AS, _mem, _mem)
_limit(resource.RLIMIT_FSIZE, _fsize, _fsize)
_limit(resource.RLIMIT_NOFILE, _nofile, _nofile)
_limit(resource.RLIMIT_CORE, 0, 0)
os.set_inheritable(_fd, False)

import inspect, json, linecache, types

def _ns(value):
    if isinstance(value, dict):
        return types.SimpleNamespace(**{str(k): _ns(v) for k, v in value.items()})
    return value

def _text(value):
    if value is None:
        return "None"
    if isinstance(value, str):
        return value
    if isinstance(value, (dict, list, tuple)):
        try:
            return json.dumps(value, ensure_ascii=False, default=str)
        except (TypeError, ValueError):
            pass
    return str(value)

def _cut(text):
    data = text.encode("utf-8", "replace")
    if len(data) <= _cap:
        return text
    kept = data[:_cap].decode("utf-8", "ignore")
    return kept + "\n[truncated %d bytes]" % (len(data) - _cap)

def _describe(exc):
    if isinstance(exc, MemoryError):
        head = "exceeded memory limit of %d MB (MemoryError)" % (_mem // 1048576)
    elif isinstance(exc, SyntaxError) and exc.filename == FILE:
        line = (exc.text or "").strip()
        return "SyntaxError: %s (line %s: %s)" % (exc.msg, exc.lineno, line)
    elif isinstance(exc, SystemExit):
        return "the tool called exit(%r)" % (exc.code,)
    else:
        head = type(exc).__name__ + (": %s" % exc if str(exc) else "")
    import traceback
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == FILE]
    if frames:
        f = frames[-1]
        head += " (line %s in %s: %s)" % (f.lineno, f.name, (f.line or "").strip())
    return head

async def _wait(awaitable):
    return await awaitable

def _call(req):
    source, name = req["source"], req["function"]
    linecache.cache[FILE] = (len(source), None, source.splitlines(True), FILE)
    module = types.ModuleType("memgrid_tool")
    module.__file__ = FILE
    sys.modules["memgrid_tool"] = module
    exec(compile(source, FILE, "exec"), module.__dict__)
    func = module.__dict__.get(name)
    if not callable(func):
        return {"status": "error", "error": "function %r is not defined in the tool source" % name}
    kwargs = dict(req["arguments"])
    try:
        params = inspect.signature(func).parameters
    except (TypeError, ValueError):
        params = {}
    if "agent_state" in params and "agent_state" not in kwargs:
        kwargs["agent_state"] = _ns(req["agent_state"])
    value = func(**kwargs)
    if inspect.isawaitable(value):
        import asyncio  # only for async tools: importing it costs ~30 ms
        value = asyncio.run(_wait(value))
    return {"status": "success", "return_value": _cut(_text(value))}

try:
    _reply = _call(json.loads(sys.stdin.buffer.read()))
except BaseException as exc:
    _reply = {"status": "error", "error": _cut(_describe(exc))}
for _stream in (sys.stdout, sys.stderr):
    try:
        _stream.flush()
    except Exception:
        pass
_data = json.dumps(_reply, ensure_ascii=False).encode("utf-8", "replace")
while _data:
    _data = _data[os.write(_fd, _data):]
os._exit(0)
""".replace("%(file)r", repr(_TOOL_FILE))


class SandboxLimits(msgspec.Struct, frozen=True, kw_only=True):
    """Resource limits for one tool run.

    Attributes:
        timeout_s: Wall-clock limit; the process group is killed when it passes.
        cpu_s: CPU seconds (``RLIMIT_CPU``); the child gets SIGXCPU, then SIGKILL a second later.
        memory_mb: Address space (``RLIMIT_AS``). A child that imports only the stdlib fits in
            32 MB; ``numpy`` needs about 256 MB and ``onnxruntime`` about 192 MB here, so the
            default leaves room for common packages.
        max_output_bytes: Cap on each of stdout, stderr and the return value; the rest is
            dropped and a ``[truncated N bytes]`` line says so.
        max_file_mb: Largest file the tool may write (``RLIMIT_FSIZE``).
        max_open_files: Open file descriptors (``RLIMIT_NOFILE``).
    """

    timeout_s: float = 30.0
    cpu_s: int = 30
    memory_mb: int = 1024
    max_output_bytes: int = _MB
    max_file_mb: int = 64
    max_open_files: int = 256


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
        duration_s: Wall time of the run, start of the child to cleanup.
        exit_code: The child's exit status (negative: killed by that signal); None if unknown.
    """

    status: Literal["success", "error"]
    return_value: str | None = None
    stdout: str = ""
    stderr: str = ""
    error: str | None = None
    duration_s: float = 0.0
    exit_code: int | None = None


class _Reply(msgspec.Struct, frozen=True):
    status: Literal["success", "error"]
    return_value: str | None = None
    error: str | None = None


_reply_decoder = msgspec.json.Decoder(_Reply)


class _Capture:
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


def _child_env(home: str, extra: Mapping[str, str] | None) -> dict[str, str]:
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


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


async def _feed(stream: anyio.abc.ByteSendStream | None, data: bytes) -> None:
    if stream is None:
        return
    try:
        await stream.send(data)
    except (anyio.BrokenResourceError, anyio.ClosedResourceError):
        pass  # the child died before reading its request; its exit status tells why
    finally:
        await stream.aclose()


async def _drain(stream: anyio.abc.ByteReceiveStream | None, capture: _Capture) -> None:
    if stream is None:
        return
    async for chunk in stream:
        capture.add(chunk)


async def _drain_fd(fd: int, capture: _Capture) -> None:
    while True:
        await anyio.wait_readable(fd)
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            continue
        if not chunk:
            return
        capture.add(chunk)


def _failure(exit_code: int | None, limits: SandboxLimits) -> str:
    if exit_code is None:
        return "the tool did not report a result"
    if exit_code < 0:
        number = -exit_code
        if number == signal.SIGXCPU:
            return f"exceeded CPU limit of {limits.cpu_s}s"
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = "unknown"
        return f"killed by signal {number} ({name})"
    return f"exited with code {exit_code} without a result"


async def run_tool_source(
    source: str,
    function_name: str,
    arguments: dict[str, Any],
    *,
    agent_state: Mapping[str, Any] | None = None,
    limits: SandboxLimits = SandboxLimits(),  # noqa: B008 (frozen, so sharing it is safe)
    env: Mapping[str, str] | None = None,
    python: str = sys.executable,
) -> SandboxResult:
    """Runs ``function_name`` from untrusted ``source`` in a limited child process.

    Args:
        source: Python source that defines the function (and may import installed packages).
        function_name: The function to call after the source is executed.
        arguments: Keyword arguments for the call; must be JSON-encodable.
        agent_state: Passed as ``agent_state`` (nested mappings become ``SimpleNamespace``
            objects, so ``agent_state.id`` works) when the function has that parameter.
        limits: CPU, memory, output, file and wall-clock limits.
        env: Extra environment variables for the child, e.g. ``MEMGRID_API_URL``. Nothing
            else of the server's environment is passed on.
        python: The interpreter to run; its installed packages are importable by the tool.

    Returns:
        The outcome; failures of the tool, its limits and crashes of the child are reported
        in it with ``status="error"``.

    Raises:
        OSError: The interpreter could not be started.
        TypeError: ``arguments`` or ``agent_state`` cannot be encoded as JSON.
    """
    request = msgspec.json.encode(
        {
            "source": source,
            "function": function_name,
            "arguments": arguments,
            "agent_state": dict(agent_state) if agent_state is not None else None,
        }
    )
    cap = limits.max_output_bytes
    out, err = _Capture(cap), _Capture(cap)
    # The reply holds a capped return value; JSON escaping can grow it a few times over.
    reply = _Capture(8 * cap + 65536)
    started = time.perf_counter()
    workdir = tempfile.mkdtemp(prefix="memgrid-tool-")
    read_fd, write_fd = os.pipe()
    os.set_blocking(read_fd, False)
    argv = [
        python,
        "-I",
        "-B",
        "-c",
        _RUNNER,
        str(write_fd),
        str(limits.cpu_s),
        str(limits.memory_mb * _MB),
        str(limits.max_file_mb * _MB),
        str(limits.max_open_files),
        str(cap),
    ]
    process: anyio.abc.Process | None = None
    try:
        try:
            process = await anyio.open_process(
                argv,
                cwd=workdir,
                env=_child_env(workdir, env),
                start_new_session=True,
                pass_fds=(write_fd,),
            )
        finally:
            os.close(write_fd)
        with anyio.move_on_after(limits.timeout_s) as deadline:
            async with anyio.create_task_group() as tg:
                tg.start_soon(_feed, process.stdin, request)
                tg.start_soon(_drain, process.stdout, out)
                tg.start_soon(_drain, process.stderr, err)
                tg.start_soon(_drain_fd, read_fd, reply)
                await process.wait()
                # Subprocesses the tool left behind would hold the pipes open.
                _kill_group(process.pid)
    finally:
        with anyio.CancelScope(shield=True):
            if process is not None:
                if process.returncode is None:
                    _kill_group(process.pid)
                await process.aclose()
            os.close(read_fd)
            await anyio.to_thread.run_sync(shutil.rmtree, workdir, True)
    duration = time.perf_counter() - started
    exit_code = process.returncode
    parsed = _Reply(status="error", error=_failure(exit_code, limits))
    if deadline.cancelled_caught:
        parsed = _Reply(status="error", error=f"timed out after {limits.timeout_s:g}s")
    elif reply.dropped:
        parsed = _Reply(status="error", error="the tool's result was too large")
    elif reply.data:
        try:
            parsed = _reply_decoder.decode(reply.data)
        except msgspec.DecodeError:
            parsed = _Reply(status="error", error="the tool's result was malformed")
    return SandboxResult(
        status=parsed.status,
        return_value=parsed.return_value if parsed.status == "success" else None,
        stdout=out.text(),
        stderr=err.text(),
        error=parsed.error,
        duration_s=duration,
        exit_code=exit_code,
    )
