"""The sandbox's settings: limits per deployment and per tool, network policy, tool user.

Everything is read from the environment here, once, with errors that name the variable:

==============================  =========  ===============================================
variable                        default    meaning
==============================  =========  ===============================================
``MEMGRID_SANDBOX_TIMEOUT_S``   30         wall clock per call (s)
``MEMGRID_SANDBOX_CPU_S``       30         CPU seconds per process
``MEMGRID_SANDBOX_MEMORY_MB``   1024       address space per process
``MEMGRID_SANDBOX_MAX_PROCESSES`` 64       processes + threads of one call
``MEMGRID_SANDBOX_MAX_OUTPUT_BYTES`` 1 MiB stdout, stderr and return value, each
``MEMGRID_SANDBOX_MAX_OPEN_FILES`` 256     descriptors per process
``MEMGRID_SANDBOX_MAX_FILE_MB`` 64         largest file written
``MEMGRID_SANDBOX_TOOL_LIMITS`` unset      JSON ``{"tool": {"timeout_s": 120}}`` overrides
``MEMGRID_SANDBOX_NETWORK``     ``all``    ``all``, ``api`` (memgrid's API only), ``none``
``MEMGRID_SANDBOX_USER``        memgrid-tool  the user tools run as when the server is root
``MEMGRID_SANDBOX_CGROUP``      auto       a pids cgroup folder to create call groups in,
                                           or ``off``
``MEMGRID_SANDBOX_ENVS``        ``$MEMGRID_HOME/sandbox-envs``  where tools' environments
                                           (one per ``pip_requirements`` set) are built
==============================  =========  ===============================================
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import msgspec

__all__ = ("NetworkPolicy", "SandboxLimits", "SandboxSettings")

_MB = 1024 * 1024

NetworkPolicy = Literal["all", "api", "none"]


class SandboxLimits(msgspec.Struct, frozen=True, kw_only=True):
    """Resource limits for one tool run; each field's name is the name a violation reports.

    Attributes:
        timeout_s: Wall-clock limit; every process of the call is killed when it passes.
        cpu_s: CPU seconds (``RLIMIT_CPU``); the child gets SIGXCPU, then SIGKILL a second later.
        memory_mb: Address space of each process (``RLIMIT_AS``) and, with a memory cgroup,
            the memory of all the call's processes together. A child with only the stdlib fits in
            32 MB; ``numpy`` needs about 256 MB and ``onnxruntime`` about 192 MB here, so the
            default leaves room for common packages.
        max_processes: Processes and threads the call may run at once (a pids cgroup, else
            ``RLIMIT_NPROC`` for the tool user).
        max_output_bytes: Cap on each of stdout, stderr and the return value; the rest is
            dropped and a ``[truncated N bytes]`` line says so.
        max_file_mb: Largest file the tool may write (``RLIMIT_FSIZE``).
        max_open_files: Open file descriptors (``RLIMIT_NOFILE``).
    """

    timeout_s: float = 30.0
    cpu_s: int = 30
    memory_mb: int = 1024
    max_processes: int = 64
    max_output_bytes: int = _MB
    max_file_mb: int = 64
    max_open_files: int = 256


_limit_fields = {f.name: f.type for f in msgspec.structs.fields(SandboxLimits)}
_overrides_decoder = msgspec.json.Decoder(dict[str, dict[str, float]])


class SandboxSettings(msgspec.Struct, frozen=True, kw_only=True):
    """How this deployment runs tools (see the module docstring for the variables).

    Attributes:
        limits: The deployment's limits.
        tool_limits: Per tool name, the limits that differ from the deployment's.
        network: ``all``, ``api`` (only ``api_url``) or ``none``.
        user: The user tools run as when the server runs as root (created on first use).
        cgroup: ``auto``, ``off`` or the pids cgroup folder to create call groups in.
        api_url: memgrid's API as tools see it (``MEMGRID_API_URL``).
        home: ``MEMGRID_HOME``, hidden from tools.
        envs: Where tools' environments are built (:mod:`agents.tool_envs`).
    """

    limits: SandboxLimits = SandboxLimits()
    tool_limits: dict[str, SandboxLimits] = msgspec.field(default_factory=dict)
    network: NetworkPolicy = "all"
    user: str = "memgrid-tool"
    cgroup: str = "auto"
    api_url: str | None = None
    home: Path | None = None
    envs: Path | None = None

    def limits_for(self, tool: str) -> SandboxLimits:
        """The limits of ``tool``: its own where the operator set some, else the deployment's."""
        return self.tool_limits.get(tool, self.limits)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SandboxSettings:
        """Reads the ``MEMGRID_SANDBOX_*`` variables.

        Raises:
            ValueError: A variable has a bad value; the message names it and what it takes.
        """
        env = os.environ if environ is None else environ
        values: dict[str, float] = {}
        for name, kind in _limit_fields.items():
            var = f"MEMGRID_SANDBOX_{name.upper()}"
            raw = env.get(var)
            if raw:
                values[name] = _number(var, raw, kind)
        limits = _limits(SandboxLimits(), values, "MEMGRID_SANDBOX_*")
        per_tool: dict[str, SandboxLimits] = {}
        raw_tools = env.get("MEMGRID_SANDBOX_TOOL_LIMITS")
        if raw_tools:
            try:
                overrides = _overrides_decoder.decode(raw_tools)
            except msgspec.DecodeError as exc:
                raise ValueError(
                    "MEMGRID_SANDBOX_TOOL_LIMITS must be JSON like "
                    f'{{"tool_name": {{"timeout_s": 120}}}}: {exc}'
                ) from None
            for tool, fields in overrides.items():
                where = f"MEMGRID_SANDBOX_TOOL_LIMITS[{tool!r}]"
                per_tool[tool] = _limits(limits, fields, where)
        network = env.get("MEMGRID_SANDBOX_NETWORK") or "all"
        if network not in ("all", "api", "none"):
            raise ValueError(f"MEMGRID_SANDBOX_NETWORK must be all, api or none, not {network!r}")
        home = env.get("MEMGRID_HOME") or ".memgrid"
        return cls(
            limits=limits,
            tool_limits=per_tool,
            network=network,  # type: ignore[arg-type]  # checked against the literal above
            user=env.get("MEMGRID_SANDBOX_USER") or "memgrid-tool",
            cgroup=env.get("MEMGRID_SANDBOX_CGROUP") or "auto",
            api_url=env.get("MEMGRID_API_URL") or None,
            home=Path(home).expanduser().absolute(),
            envs=Path(env.get("MEMGRID_SANDBOX_ENVS") or Path(home) / "sandbox-envs")
            .expanduser()
            .absolute(),
        )


def _number(var: str, raw: str, kind: object) -> float:
    try:
        value = float(raw) if kind is float else int(raw)
    except ValueError:
        what = "a number" if kind is float else "a whole number"
        raise ValueError(f"{var} must be {what}, not {raw!r}") from None
    if value <= 0:
        raise ValueError(f"{var} must be positive, not {raw!r}")
    return value


def _limits(base: SandboxLimits, values: Mapping[str, float], where: str) -> SandboxLimits:
    unknown = sorted(set(values) - set(_limit_fields))
    if unknown:
        raise ValueError(
            f"{where}: unknown limit {unknown[0]!r}; the limits are {', '.join(_limit_fields)}"
        )
    fixed: dict[str, float] = {}
    for name, value in values.items():
        if value <= 0:
            raise ValueError(f"{where}: {name} must be positive, not {value!r}")
        fixed[name] = value if _limit_fields[name] is float else int(value)
    return msgspec.structs.replace(base, **fixed)
