"""Reading the deploy recipes the way their tools do: YAML documents, Dockerfile instructions,
systemd units, env files. Every command line a recipe runs is returned with where it came from,
so a test can check it against the real ``memgrid`` parser."""

from __future__ import annotations

import ast
import configparser
import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
PACKAGES = ("bus", "storage", "agents", "orchestrator")


@dataclass(frozen=True)
class Command:
    """One command line a recipe runs, as argv, and the place that runs it."""

    where: str
    argv: tuple[str, ...]

    def memgrid_args(self) -> tuple[str, ...] | None:
        """The arguments of ``memgrid`` when this line runs it (directly, by path, or under
        ``tini --``/``exec``), else ``None``."""
        argv = self.argv
        while argv and (argv[0] in _WRAPPERS or argv[0].endswith("/tini")):
            argv = argv[1:]
        if argv and (argv[0] == "memgrid" or argv[0].endswith("/bin/memgrid")):
            return argv[1:]
        return None


_WRAPPERS = ("tini", "--", "exec")


def load_yaml(path: Path) -> list[dict[str, Any]]:
    """Every document of a YAML file (empty ones dropped)."""
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def compose() -> dict[str, Any]:
    (doc,) = load_yaml(DEPLOY / "compose.yaml")
    return doc


def k8s_objects() -> list[dict[str, Any]]:
    """The objects of every manifest the kustomization lists."""
    objects: list[dict[str, Any]] = []
    for name in kustomization()["resources"]:
        objects.extend(load_yaml(K8S / name))
    return objects


def kustomization() -> dict[str, Any]:
    (doc,) = load_yaml(K8S / "kustomization.yaml")
    return doc


def k8s_object(kind: str, name: str) -> dict[str, Any]:
    found = [o for o in k8s_objects() if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name} in deploy/k8s, found {len(found)}"
    return found[0]


def pod_containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    spec = obj.get("spec", {}).get("template", {}).get("spec", {})
    return list(spec.get("containers", [])) + list(spec.get("initContainers", []))


def _argv(value: str | list[str]) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(shlex.split(value))
    return tuple(str(v) for v in value)


def _compose_test(test: str | list[str]) -> tuple[str, ...]:
    argv = _argv(test)
    if argv[:1] == ("CMD",):
        return argv[1:]
    if argv[:1] == ("CMD-SHELL",):
        return tuple(shlex.split(" ".join(argv[1:])))
    return argv


def compose_commands() -> list[Command]:
    found: list[Command] = []
    for name, service in compose()["services"].items():
        if "command" in service:
            found.append(Command(f"compose {name} command", _argv(service["command"])))
        if "healthcheck" in service:
            test = _compose_test(service["healthcheck"]["test"])
            found.append(Command(f"compose {name} healthcheck", test))
    return found


def _probe_commands(where: str, container: dict[str, Any]) -> list[Command]:
    found: list[Command] = []
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        exec_ = container.get(probe, {}).get("exec")
        if exec_:
            found.append(Command(f"{where} {probe}", _argv(exec_["command"])))
    for hook in ("preStop", "postStart"):
        exec_ = container.get("lifecycle", {}).get(hook, {}).get("exec")
        if exec_:
            found.append(Command(f"{where} {hook}", _argv(exec_["command"])))
    return found


def k8s_commands() -> list[Command]:
    found: list[Command] = []
    for obj in k8s_objects():
        for container in pod_containers(obj):
            where = f"k8s {obj['kind']} {obj['metadata']['name']}/{container['name']}"
            argv = _argv(container.get("command", [])) + _argv(container.get("args", []))
            if argv:
                found.append(Command(where, argv))
            found.extend(_probe_commands(where, container))
    return found


def systemd_unit(name: str) -> configparser.ConfigParser:
    # systemd units are INI-like; repeated keys (several Environment= lines) are allowed.
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]  # keys keep their case
    unit.read_string((DEPLOY / name).read_text())
    return unit


def systemd_units() -> list[str]:
    return sorted(p.name for p in DEPLOY.glob("*.service"))


def systemd_commands() -> list[Command]:
    found: list[Command] = []
    for name in systemd_units():
        service = systemd_unit(name)["Service"]
        for key in ("ExecStart", "ExecStartPre", "ExecStop", "ExecReload"):
            if key in service:
                found.append(Command(f"{name} {key}", _argv(service[key].lstrip("-@+!"))))
    return found


@dataclass(frozen=True)
class Instruction:
    keyword: str
    value: str
    stage: int


def dockerfile() -> list[Instruction]:
    """The Dockerfile's instructions, continuation lines joined, with the build stage index."""
    lines: list[str] = []
    pending = ""
    for raw in (DEPLOY / "Dockerfile").read_text().splitlines():
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):  # a comment inside a continued instruction
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued instruction"
    found: list[Instruction] = []
    stage = -1
    for line in lines:
        keyword, _, value = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stage += 1
        found.append(Instruction(keyword, value.strip(), stage))
    return found


def dockerfile_argv(value: str) -> tuple[str, ...]:
    """An exec-form (JSON array) or shell-form instruction value as argv."""
    if value.startswith("["):
        return tuple(json.loads(value))
    return tuple(shlex.split(value))


def dockerfile_commands() -> list[Command]:
    found: list[Command] = []
    for ins in dockerfile():
        if ins.keyword in ("CMD", "ENTRYPOINT"):
            found.append(Command(f"Dockerfile {ins.keyword}", dockerfile_argv(ins.value)))
        elif ins.keyword == "HEALTHCHECK":
            _, _, cmd = ins.value.partition("CMD ")
            found.append(Command("Dockerfile HEALTHCHECK", dockerfile_argv(cmd.strip())))
        elif ins.keyword == "RUN":
            for part in re.split(r"&&|;", ins.value):
                argv = tuple(shlex.split(part))
                if argv:
                    found.append(Command("Dockerfile RUN", argv))
    return found


def dockerfile_env() -> dict[str, str]:
    """ENV of the final stage (``ENV A=1 B=2`` form)."""
    last = max(i.stage for i in dockerfile())
    env: dict[str, str] = {}
    for ins in dockerfile():
        if ins.keyword == "ENV" and ins.stage == last:
            for pair in shlex.split(ins.value):
                key, _, value = pair.partition("=")
                env[key] = value
    return env


def all_commands() -> list[Command]:
    return compose_commands() + k8s_commands() + systemd_commands() + dockerfile_commands()


def env_file(path: Path) -> dict[str, str]:
    """``NAME=value`` lines of an env file (systemd EnvironmentFile, compose env_file)."""
    env: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f"{path.name}: {raw!r} is not NAME=value"
            env[key.strip()] = value.strip()
    return env


def variables_in_source() -> set[str]:
    """Environment variable names our packages name as a string literal (the reads at process
    entry: ``os.environ.get("MEMGRID_MODEL")`` and the like)."""
    names: set[str] = set()
    pattern = re.compile(r"^(MEMGRID|OPENAI|REDIS)_[A-Z0-9_]+$")
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
                is_text = isinstance(node, ast.Constant) and isinstance(node.value, str)
                if is_text and pattern.match(node.value):
                    names.add(node.value)
    return names
