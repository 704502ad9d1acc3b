"""The script the sandbox's child interpreter runs (stdlib only, started as ``python -I -B -c``).

It takes one JSON argument, the call's setup, and applies it before it reads any tool code, in
an order that matters: join the call's pids cgroup (so nothing it starts escapes the cap), enter
new network and mount namespaces while still privileged (a private ``/tmp``, ``MEMGRID_HOME``
hidden, loopback only), drop to the tool user, start the loopback relay to the API (policy
``api``), and only then lower its resource limits. A setup step that fails ends the run with an
error reply that says which step; the host probed the same steps before, so that is rare.

The reply goes to a private pipe (``fd``), so whatever the tool prints cannot corrupt it.
"""

from __future__ import annotations

__all__ = ("RUNNER", "TOOL_FILE")

TOOL_FILE = "<tool>"

RUNNER = r"""
import json, os, resource, sys
_cfg = json.loads(sys.argv[1])
_fd, _cap, _mem = _cfg["fd"], _cfg["cap"], _cfg["memory"]
FILE = %(file)r

def _reply_and_exit(reply):
    data = json.dumps(reply, ensure_ascii=False).encode("utf-8", "replace")
    while data:
        data = data[os.write(_fd, data):]
    os._exit(0)

def _setup():
    for procs in _cfg["cgroups"]:
        with open(procs, "w") as f:
            f.write(str(os.getpid()))
    flags = (0x40000000 if _cfg["netns"] else 0) | (0x00020000 if _cfg["mountns"] else 0)
    if flags:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.unshare(flags) != 0:
            raise OSError(ctypes.get_errno(), "unshare failed")
        if _cfg["netns"]:
            import fcntl, socket, struct
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                ifr = fcntl.ioctl(s, 0x8913, struct.pack("16sH14x", b"lo", 0))
                up = struct.unpack("16sH14x", ifr)[1] | 1
                fcntl.ioctl(s, 0x8914, struct.pack("16sH14x", b"lo", up))
        if _cfg["mountns"]:
            mount = libc.mount
            def _mount(src, dst, fstype, flags, data=None):
                if mount(src, dst.encode(), fstype, flags, data) != 0:
                    raise OSError(ctypes.get_errno(), "mount %%s failed" %% dst)
            _mount(None, "/", None, 0x4000 | 0x40000)  # MS_REC | MS_PRIVATE
            # By descriptor: mounting over /tmp or /root may hide the source's own path.
            work = os.open(_cfg["workdir"], os.O_PATH)
            exposed = [(hide, path, os.open(path, os.O_PATH)) for hide, path in _cfg["expose"]]
            for dst in _cfg["private_dirs"]:
                if os.path.isdir(dst):
                    _mount(b"/proc/self/fd/%%d" %% work, dst, None, 0x1000 | 0x4000)  # BIND|REC
            for dst in _cfg["hidden_dirs"]:
                if os.path.isdir(dst):
                    _mount(b"tmpfs", dst, b"tmpfs", 0x1 | 0x2 | 0x8)  # RDONLY|NOSUID|NOEXEC
            # The interpreter under a folder the tool user may not enter (/root/.pyenv):
            # an empty tmpfs over that folder, with just the interpreter bound back in; or
            # under /tmp, now the call's own: bound back at its path.
            covered = set()
            for hide, path, fd in exposed:
                if hide and hide not in covered:
                    _mount(b"tmpfs", hide, b"tmpfs", 0x2, b"mode=755")  # NOSUID
                    covered.add(hide)
                os.makedirs(path, exist_ok=True)
                _mount(b"/proc/self/fd/%%d" %% fd, path, None, 0x1000 | 0x4000)
                os.close(fd)
            os.close(work)
    os.chdir(_cfg["cwd"])
    server = None
    if _cfg["relay_port"]:  # bound while privileged: the API may listen on a port below 1024
        import socket
        server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", _cfg["relay_port"]))
        server.listen(64)
    if _cfg["uid"] >= 0:
        os.setgroups([])
        os.setgid(_cfg["gid"])
        os.setuid(_cfg["uid"])
    if server is not None:
        _relay(server, _cfg["relay_socket"])

def _relay(server, path):
    import socket, threading
    def pump(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            try:
                dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass
    def serve():
        while True:
            try:
                conn, _ = server.accept()
                up = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                up.connect(path)
                threading.Thread(target=pump, args=(conn, up), daemon=True).start()
                threading.Thread(target=pump, args=(up, conn), daemon=True).start()
            except OSError:
                continue
    threading.Thread(target=serve, daemon=True).start()

def _limit(kind, soft, hard):
    cur = resource.getrlimit(kind)[1]
    if cur != resource.RLIM_INFINITY:
        soft, hard = min(soft, cur), min(hard, cur)
    resource.setrlimit(kind, (soft, hard))

try:
    _setup()
except BaseException as exc:
    _reply_and_exit({"status": "error", "error": "sandbox setup failed: %%r" %% (exc,)})
_limit(resource.RLIMIT_CPU, _cfg["cpu"], _cfg["cpu"] + 1)
_limit(resource.RLIMIT_AS, _mem, _mem)
_limit(resource.RLIMIT_FSIZE, _cfg["fsize"], _cfg["fsize"])
_limit(resource.RLIMIT_NOFILE, _cfg["nofile"], _cfg["nofile"])
_limit(resource.RLIMIT_CORE, 0, 0)
if _cfg["nproc"]:
    _limit(resource.RLIMIT_NPROC, _cfg["nproc"], _cfg["nproc"])
os.set_inheritable(_fd, False)

import errno, inspect, linecache, types

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
    return kept + "\n[truncated %%d bytes]" %% (len(data) - _cap)

_LIMIT_ERRNOS = {errno.EMFILE: "max_open_files", errno.EFBIG: "max_file_mb",
                 errno.EAGAIN: "max_processes"}

def _describe(exc):
    limit = None
    if isinstance(exc, MemoryError):
        head = "exceeded memory limit of %%d MB (MemoryError)" %% (_mem // 1048576)
        limit = "memory_mb"
    elif isinstance(exc, SyntaxError) and exc.filename == FILE:
        line = (exc.text or "").strip()
        return "SyntaxError: %%s (line %%s: %%s)" %% (exc.msg, exc.lineno, line), None
    elif isinstance(exc, SystemExit):
        return "the tool called exit(%%r)" %% (exc.code,), None
    else:
        head = type(exc).__name__ + (": %%s" %% exc if str(exc) else "")
        if isinstance(exc, OSError):
            limit = _LIMIT_ERRNOS.get(exc.errno)
    import traceback
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == FILE]
    if frames:
        f = frames[-1]
        head += " (line %%s in %%s: %%s)" %% (f.lineno, f.name, (f.line or "").strip())
    return head, limit

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
        error = "function %%r is not defined in the tool source" %% name
        return {"status": "error", "error": error}
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
    _error, _which = _describe(exc)
    _reply = {"status": "error", "error": _cut(_error), "limit": _which}
for _stream in (sys.stdout, sys.stderr):
    try:
        _stream.flush()
    except Exception:
        pass
_reply_and_exit(_reply)
""".replace("%(file)r", repr(TOOL_FILE)).replace("%%", "%")
