"""Sandbox environments: one virtualenv per set of pip requirements, built once, shared.

A custom tool runs on the interpreter of an environment that holds the default packages
(``tool_env_requirements.txt``: the letta-client that the course's tools import to call back
into the API) plus the tool's own ``pip_requirements``. Each set is built once with
``python -m venv`` and pip under ``<root>/<hash>`` (``MEMGRID_HOME/sandbox-envs`` unless
``MEMGRID_SANDBOX_ENVS`` says otherwise) and reused by every later call and every worker that
shares the folder: a file lock makes two builders of one set build it once, and a marker
written last tells a finished environment from one a killed build left half done (which is
rebuilt). pip's progress is logged as ``sandbox_env_progress``.

pip installs wheels only (``--only-binary :all:``): a wheel's installation runs no code, while
building an sdist would run a stranger's ``setup.py`` as the server's user, outside the
sandbox. pip gets a minimal environment (no server keys).

Errors::

    ToolEnvError   the set could not be installed; names the packages and quotes pip
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import anyio
import structlog

from storage.errors import UserError
from storage.records import PipRequirement

__all__ = (
    "ToolEnvError",
    "ToolEnvs",
    "default_requirements",
    "requirement_specs",
)

READY = ".memgrid-ready"
_REQUIREMENTS_FILE = Path(__file__).with_name("tool_env_requirements.txt")
_PASSED_ENV = ("PATH", "HOME", "LANG", "http_proxy", "https_proxy", "no_proxy", "SSL_CERT_FILE")
_RETRY_FAILED_S = 60.0

log = structlog.get_logger("memgrid.sandbox")


class ToolEnvError(UserError):
    """A tool's environment could not be built; the message names the packages and pip's
    own words, and is what the model sees as the tool's error."""


def default_requirements() -> tuple[str, ...]:
    """The packages of every tool environment (``agents/tool_env_requirements.txt``, which the
    Makefile's client pin reads too)."""
    lines = _REQUIREMENTS_FILE.read_text().splitlines()
    return tuple(line.strip() for line in lines if line.strip() and not line.startswith("#"))


def requirement_specs(requirements: Iterable[PipRequirement]) -> list[str]:
    """Letta's ``{"name", "version"}`` pairs as pip specifiers: a bare version is pinned."""
    specs = []
    for req in requirements:
        version = (req.version or "").replace(" ", "")
        if version and version[0].isalnum():
            version = f"=={version}"
        specs.append(f"{req.name}{version}")
    return specs


def _canonical(spec: str) -> str:
    name = re.split(r"[\[=<>!~]", spec, maxsplit=1)[0]
    return re.sub(r"[-_.]+", "-", name).lower()


class ToolEnvs:
    """Interpreters for requirement sets, built on first use under ``root``.

    Args:
        root: Where the environments live.
        python: The interpreter environments are made from (memgrid's own by default).
        base: Packages every environment holds; a tool's requirement of the same package
            replaces the base one (a tool may pin another letta-client).
        timeout_s: The most one build may take.
    """

    def __init__(
        self,
        root: Path,
        *,
        python: str = sys.executable,
        base: Sequence[str] | None = None,
        timeout_s: float = 600,
    ) -> None:
        self.root = root
        self._python = python
        self._base = tuple(default_requirements() if base is None else base)
        self._timeout_s = timeout_s
        self._locks: dict[str, anyio.Lock] = {}
        self._failed: dict[str, tuple[float, str]] = {}
        self.builds = 0  # environments this instance built (not found ready)

    def specs(self, requirements: Sequence[str]) -> list[str]:
        """The whole set for a tool's ``requirements``: the base ones it does not replace."""
        own = {_canonical(spec) for spec in requirements}
        kept = [spec for spec in self._base if _canonical(spec) not in own]
        return sorted(dict.fromkeys([*kept, *requirements]))

    def folder(self, specs: Sequence[str]) -> Path:
        """Where the environment of ``specs`` (a whole set) lives."""
        key = json.dumps([os.path.realpath(self._python), sys.version, list(specs)])
        return self.root / hashlib.sha256(key.encode()).hexdigest()[:24]

    async def python_for(self, requirements: Sequence[str] = ()) -> str:
        """The interpreter of the environment for ``requirements``, built if need be.

        Raises:
            ToolEnvError: pip could not install the set (reported again for a minute
                without retrying, so that a bad package does not cost a build per call).
        """
        specs = self.specs(requirements)
        folder = self.folder(specs)
        python = str(folder / "bin" / "python")
        if (folder / READY).exists():
            return python
        lock = self._locks.setdefault(folder.name, anyio.Lock())
        async with lock:
            failed = self._failed.get(folder.name)
            if failed is not None and time.monotonic() - failed[0] < _RETRY_FAILED_S:
                raise ToolEnvError(failed[1])
            try:
                await anyio.to_thread.run_sync(self._build, folder, specs)
            except ToolEnvError as exc:
                self._failed[folder.name] = (time.monotonic(), str(exc))
                raise
            self._failed.pop(folder.name, None)
        return python

    def _build(self, folder: Path, specs: list[str]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / f"{folder.name}.lock", "a+b") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)  # another worker may be building this set
            if (folder / READY).exists():
                return
            started = time.perf_counter()
            log.info("sandbox_env_building", env=folder.name, requirements=specs)
            shutil.rmtree(folder, ignore_errors=True)  # what a killed build left behind
            try:
                self._run([self._python, "-m", "venv", str(folder)], specs)
                pip = [str(folder / "bin" / "python"), "-m", "pip", "install"]
                options = ["--disable-pip-version-check", "--no-input", "--progress-bar", "off"]
                self._run([*pip, *options, "--only-binary", ":all:", *specs], specs)
            except BaseException:
                shutil.rmtree(folder, ignore_errors=True)
                raise
            # Readable by the tool user, whatever the server's umask.
            for path in (folder, *folder.rglob("*")):
                with contextlib.suppress(OSError):
                    if not path.is_symlink():
                        mode = path.stat().st_mode
                        os.chmod(path, mode | 0o044 | (0o011 if mode & 0o100 else 0))
            (folder / READY).write_text(json.dumps(specs))
            self.builds += 1
            log.info(
                "sandbox_env_built",
                env=folder.name,
                requirements=specs,
                duration_s=round(time.perf_counter() - started, 2),
            )

    def _run(self, command: list[str], specs: list[str]) -> None:
        env = {k: v for k, v in os.environ.items() if k in _PASSED_ENV or k.startswith("PIP_")}
        lines: list[str] = []
        with subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            text=True,
            errors="replace",
        ) as process:
            timer = threading.Timer(self._timeout_s, process.kill)
            timer.start()
            try:
                assert process.stdout is not None
                for raw in process.stdout:
                    line = raw.rstrip()
                    lines.append(line)
                    if line.startswith(("Collecting", "Installing", "Successfully")):
                        log.info("sandbox_env_progress", line=line)
                code = process.wait()
            finally:
                timer.cancel()
                process.kill()
        if code != 0:
            errors = [line for line in lines if line.startswith("ERROR")] or lines[-5:]
            what = "timed out" if code < 0 else "failed"
            raise ToolEnvError(
                f"could not install the tool's packages {', '.join(specs)} ({what}): "
                + " ".join(errors)[-1500:]
            )
