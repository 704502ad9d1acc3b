"""What this host lets the sandbox do, probed once per process, and each call's pids cgroup.

:func:`probe` finds, from strongest to weakest:

- a **pids cgroup** (v1 ``/sys/fs/cgroup/pids`` or a v2 folder with the pids controller
  delegated): each call gets a child group whose ``pids.max`` caps its processes and threads,
  root's included, and whose member list finds every process of the call when it ends, even
  one that called ``setsid`` and forked twice;
- a **memory cgroup** the same way, so that all of a call's processes together stay within
  ``memory_mb`` (``RLIMIT_AS`` alone bounds each process, not their sum);
- when the server is **root**: a tool user (``MEMGRID_SANDBOX_USER``, created with ``useradd``
  on first use, else ``nobody``) so tools cannot read the server's files, and network and mount
  namespaces (a private ``/tmp``, ``MEMGRID_HOME`` hidden, the network policy enforced).

What is missing is logged once as ``sandbox_weaker_isolation`` with what it costs, and
``docs/security.md`` says the same. Without a cgroup, ``RLIMIT_NPROC`` still caps a tool run as
an unprivileged user (counted from that user's current processes) and the call's process group
is killed at the end; a process that left the group may then outlive the call.
"""

from __future__ import annotations

import contextlib
import functools
import os
import pwd
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import msgspec
import structlog

from agents._sandbox_config import SandboxSettings

__all__ = ("CallGroup", "Isolation", "count_processes", "exposed_paths", "probe")

log = structlog.get_logger("memgrid.sandbox")

_GROUP_DIR = "memgrid-sandbox"
_PROBE_LIMITS = {"pids": 8, "memory": 64 * 1024 * 1024}  # pids.max cannot be that large
_UNSHARE_PROBE = "import ctypes, sys; sys.exit(ctypes.CDLL(None, use_errno=True).unshare(%d) != 0)"
CLONE_NEWNET = 0x40000000
CLONE_NEWNS = 0x00020000


class Isolation(msgspec.Struct, frozen=True, kw_only=True):
    """The isolation a call gets on this host (see the module docstring).

    Attributes:
        uid: Run tools as this user (None: as the server's user).
        gid: That user's group.
        cgroup: The folder to create each call's pids group in (None: no cgroup).
        memory_cgroup: The folder to create each call's memory group in, which holds all the
            call's processes together to ``memory_mb`` (None: only ``RLIMIT_AS`` per process).
        netns: Enter a new network namespace (loopback only, plus the API relay for ``api``).
        mountns: Enter a new mount namespace (private ``/tmp``, hidden folders).
        notes: What is weaker than the full isolation, for the log and for tests.
    """

    uid: int | None = None
    gid: int | None = None
    cgroup: str | None = None
    memory_cgroup: str | None = None
    netns: bool = False
    mountns: bool = False
    notes: tuple[str, ...] = ()


def _tool_user(name: str) -> tuple[int, int] | None:
    for attempt in range(2):
        try:
            entry = pwd.getpwnam(name)
            return entry.pw_uid, entry.pw_gid
        except KeyError:
            if attempt or name == "nobody":
                return None
        # First use: a system user with no home and no shell, in a group of its own.
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
             "--shell", "/usr/sbin/nologin", "--user-group", name],
            capture_output=True, check=False, timeout=30,
        )  # fmt: skip
    return None


def _cgroup_candidates(setting: str, controller: str) -> list[Path]:
    if setting != "auto":
        return [Path(setting)]
    found: list[Path] = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            if controller in controllers.split(","):
                found.append(Path("/sys/fs/cgroup") / controller / path.lstrip("/"))
            elif controllers == "":
                for mount in (Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/unified")):
                    folder = mount / path.lstrip("/")
                    with contextlib.suppress(OSError):
                        delegated = (folder / "cgroup.subtree_control").read_text().split()
                        if controller in delegated:
                            found.append(folder)
    return found


def _usable_cgroup(setting: str, controller: str) -> str | None:
    for folder in _cgroup_candidates(setting, controller):
        base = folder / _GROUP_DIR
        try:
            base.mkdir(exist_ok=True)
            group = CallGroup.create(str(base), controller, _PROBE_LIMITS[controller])
        except OSError:
            continue
        group.remove()
        for stale in base.iterdir():  # left by a server that was killed mid-call
            with contextlib.suppress(OSError):
                if stale.is_dir() and not (stale / "cgroup.procs").read_text().strip():
                    stale.rmdir()
        return str(base)
    return None


def _can_unshare(flags: int) -> bool:
    try:
        done = subprocess.run(
            [sys.executable, "-I", "-c", _UNSHARE_PROBE % flags],
            capture_output=True, check=False, timeout=30,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def probe(settings: SandboxSettings) -> Isolation:
    """Finds out what this host offers (blocking; run it in a thread) and logs what is missing."""
    notes: list[str] = []
    root = os.geteuid() == 0
    uid = gid = None
    if root:
        user = _tool_user(settings.user) or _tool_user("nobody")
        if user is None:
            notes.append(
                f"no user {settings.user!r} and useradd failed: tools run as root and can "
                "read the server's files"
            )
        else:
            uid, gid = user
    cgroup = memory = None
    if settings.cgroup != "off":
        cgroup = _usable_cgroup(settings.cgroup, "pids")
        memory = _usable_cgroup("auto", "memory")
    if memory is None:
        notes.append(
            "no writable memory cgroup: memory_mb limits each process's address space, so a "
            "call's processes together may use max_processes times as much"
        )
    if cgroup is None:
        notes.append(
            "no writable pids cgroup: processes are capped by RLIMIT_NPROC of the tool's user "
            "(not at all for a root tool), and a tool process that leaves its process group "
            "may outlive the call"
        )
    netns = mountns = False
    if root:
        netns = _can_unshare(CLONE_NEWNET)
        mountns = _can_unshare(CLONE_NEWNS)
    if not mountns:
        notes.append("no mount namespace: tools share /tmp and can see MEMGRID_HOME's path")
    if settings.network != "all" and not netns:
        notes.append(
            f"MEMGRID_SANDBOX_NETWORK={settings.network} cannot be enforced without a network "
            "namespace (needs root): tools reach the network like the server"
        )
    isolation = Isolation(
        uid=uid,
        gid=gid,
        cgroup=cgroup,
        memory_cgroup=memory,
        netns=netns,
        mountns=mountns,
        notes=tuple(notes),
    )
    if notes:
        log.warning("sandbox_weaker_isolation", missing=list(notes))
    else:
        log.info("sandbox_isolation", uid=uid, cgroup=cgroup, network=settings.network)
    return isolation


@functools.lru_cache(maxsize=16)
def exposed_paths(
    python: str, private: tuple[str, ...], untraversable: bool, hidden: Sequence[str] = ()
) -> tuple[tuple[str, str], ...]:
    """Folders of ``python`` (its prefix, its venv) to bind back into the mount namespace, as
    pairs (folder to cover with an empty tmpfs first, or "", folder to bind).

    A folder under one of the ``private`` ones (a checkout in ``/tmp``) would vanish under the
    call's private ``/tmp``; with ``untraversable``, one behind a folder an unprivileged user
    cannot enter (pyenv under ``/root``) is bound under an empty tmpfs over that folder; one
    under a ``hidden`` folder (a tool environment in ``MEMGRID_HOME``) is bound back alone
    into the empty tmpfs that hides that folder.
    """
    wanted = {
        os.path.dirname(os.path.dirname(p))
        for p in (os.path.abspath(python), os.path.realpath(python))
    }
    if python == sys.executable:
        wanted |= {os.path.realpath(sys.prefix), os.path.realpath(sys.base_prefix)}
    # A venv whose site-packages is a link (to a shared or system one) needs its target too.
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for prefix in list(wanted):
        site = os.path.join(prefix, "lib", version, "site-packages")
        target = os.path.realpath(site)
        if target != site and not target.startswith(prefix.rstrip("/") + "/"):
            wanted.add(target)
    pairs: list[tuple[str, str]] = []
    for path in sorted(wanted):
        if any(path == d or path.startswith(d.rstrip("/") + "/") for d in private):
            pairs.append(("", path))
            continue
        covering = [d for d in hidden if path.startswith(d.rstrip("/") + "/")]
        if not untraversable:
            pairs += [(d, path) for d in covering[:1]]
            continue
        before = len(pairs)
        parts = Path(path).parts
        for depth in range(2, len(parts)):
            folder = str(Path(*parts[:depth]))
            with contextlib.suppress(OSError):
                if not os.stat(folder).st_mode & 0o001:
                    pairs.append((folder, path))
                    break
        if len(pairs) == before:
            pairs += [(d, path) for d in covering[:1]]
    return tuple(pairs)


def count_processes(uid: int) -> int:
    """How many processes ``uid`` runs now (the base that ``RLIMIT_NPROC`` adds a cap to)."""
    count = 0
    with os.scandir("/proc") as entries:
        for entry in entries:
            if entry.name.isdigit():
                with contextlib.suppress(OSError):
                    if entry.stat().st_uid == uid:
                        count += 1
    return count


# Per controller: the files that set its limit, and (file, key) pairs that count refusals;
# cgroup v1 names first, then v2.
_CONTROLLERS = {
    "pids": (("pids.max",), (("pids.events", "max"),)),
    "memory": (
        ("memory.limit_in_bytes", "memory.max"),
        (("memory.oom_control", "oom_kill"), ("memory.events", "oom_kill")),
    ),
}


class CallGroup:
    """One call's group of one controller (pids or memory): its limit, whether the limit
    refused something, and killing what is in it."""

    def __init__(self, path: Path, controller: str) -> None:
        self.path = path
        self.controller = controller
        self.procs = str(path / "cgroup.procs")
        self.limited = False  # the limit refused a fork or killed for memory (kept at removal)

    @classmethod
    def create(cls, base: str, controller: str, limit: int) -> CallGroup:
        """A new group under ``base`` that allows ``limit`` (processes and threads, or bytes)."""
        path = Path(base) / f"call-{os.getpid()}-{os.urandom(6).hex()}"
        path.mkdir()
        try:
            for name in _CONTROLLERS[controller][0]:
                if (path / name).exists():
                    (path / name).write_text(str(limit))
                    break
            else:
                raise OSError(f"{path} has no {controller} limit file")
        except OSError:
            path.rmdir()
            raise
        return cls(path, controller)

    def hit_limit(self) -> bool:
        """Whether the limit refused a fork or thread, or killed a process for memory."""
        for name, wanted in _CONTROLLERS[self.controller][1]:
            with contextlib.suppress(OSError, ValueError):
                for line in (self.path / name).read_text().splitlines():
                    key, _, value = line.partition(" ")
                    if key == wanted:
                        self.limited = self.limited or int(value) > 0
        return self.limited

    def kill_all(self, timeout_s: float = 10.0) -> bool:
        """SIGKILLs every process in the group until it is empty, then removes it.

        Members cannot outgrow ``pids.max`` meanwhile, so a fork bomb empties in a few rounds.
        Returns False (and leaves the group) if it did not empty in time.
        """
        end = time.monotonic() + timeout_s
        with contextlib.suppress(OSError):
            (self.path / "cgroup.kill").write_text("1")  # cgroup v2 does it in one step
        while True:
            try:
                pids = [int(p) for p in Path(self.procs).read_text().split()]
            except OSError:
                return True  # removed already
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            if not pids:
                self.hit_limit()
                if self.remove():
                    return True
            if time.monotonic() > end:
                log.error("sandbox_cgroup_not_empty", cgroup=str(self.path), pids=pids)
                return False
            time.sleep(0.002)

    def remove(self) -> bool:
        """Removes the (empty) group; False while it still has members."""
        try:
            self.path.rmdir()
        except FileNotFoundError:
            return True
        except OSError:
            return False
        return True
