"""Every ``memgrid`` command line a deploy recipe runs (compose, Kubernetes, systemd, Dockerfile)
parses with the real CLI parser, and every variable the recipes set is one memgrid reads."""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Iterator

import pytest

from agents._sandbox_config import SandboxSettings
from agents.llm import LLMSettings
from bus import BusSettings
from orchestrator.api import ApiSettings
from orchestrator.cli import build_parser
from storage.settings import StorageSettings
from tests.deploy import _recipes as r

# Variables a memgrid container may carry that memgrid itself does not read.
_PLATFORM = {"PATH", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE", "HOME"}


def _memgrid_commands() -> list[r.Command]:
    return [c for c in r.all_commands() if c.memgrid_args() is not None]


def test_the_recipes_run_the_commands_the_issue_asks_for() -> None:
    runs = {tuple(args[:2]) for c in _memgrid_commands() if (args := c.memgrid_args())}
    for wanted in (("worker", "--check"), ("serve", "--no-worker"), ("models", "prepare")):
        assert wanted in runs, f"no recipe runs `memgrid {' '.join(wanted)}`"
    assert any(args and args[0] == "worker" and "--check" not in args for args in runs)
    assert any(args and args[0] == "up" for args in runs), "the image's `memgrid up`"


@pytest.mark.parametrize("command", _memgrid_commands(), ids=lambda c: c.where)
def test_every_memgrid_command_a_recipe_runs_parses(command: r.Command) -> None:
    args = command.memgrid_args()
    assert args is not None
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            parsed = build_parser().parse_args(list(args))
        except SystemExit:
            pytest.fail(f"{command.where}: `memgrid {' '.join(args)}`: {err.getvalue().strip()}")
    assert getattr(parsed, "handler", None), (
        f"{command.where}: `memgrid {' '.join(args)}` runs nothing"
    )


class _Recorder(dict[str, str]):
    """An environment that remembers every name a settings reader asks for."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: set[str] = set()

    def get(self, key: str, default: object = None) -> object:  # type: ignore[override]  # records the name asked for
        self.asked.add(key)
        return default

    def __getitem__(self, key: str) -> str:
        self.asked.add(key)
        raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            self.asked.add(key)
        return False


def _read_by_settings() -> set[str]:
    env = _Recorder()
    BusSettings.from_env(env)
    StorageSettings.from_env(env)
    ApiSettings.from_env(env)
    LLMSettings.from_env(env)
    SandboxSettings.from_env(env)
    return env.asked


def test_the_recorder_sees_what_the_settings_readers_read() -> None:
    # The check below is only as good as this: a reader that bypassed `environ` would pass.
    asked = _read_by_settings()
    for name in ("MEMGRID_REDIS_URL", "MEMGRID_QDRANT_URL", "MEMGRID_API_KEY", "OPENAI_BASE_URL"):
        assert name in asked
    assert "MEMGRID_SANDBOX_MEMORY_MB" in asked  # built from the limit's field name


def _recipe_variables() -> Iterator[tuple[str, str]]:
    compose = r.compose()
    for name, service in compose["services"].items():
        if _runs_memgrid(service):
            for var in service.get("environment", {}):
                yield f"compose {name}", var
    for obj in r.k8s_objects():
        if obj["kind"] in ("ConfigMap", "Secret") and obj["metadata"]["name"].startswith("memgrid"):
            for var in {**obj.get("data", {}), **obj.get("stringData", {})}:
                yield f"k8s {obj['kind']} {obj['metadata']['name']}", var
        for container in r.pod_containers(obj):
            if container["image"].startswith("memgrid"):
                for item in container.get("env", []):
                    yield f"k8s {obj['metadata']['name']}", item["name"]
    for var in r.env_file(r.DEPLOY / "memgrid.env"):
        yield "deploy/memgrid.env", var
    for var in r.dockerfile_env():
        yield "Dockerfile ENV", var
    for var in re.findall(r"--from-literal=([A-Z_0-9]+)=", (r.ROOT / "docs/deploy.md").read_text()):
        yield "docs/deploy.md kubectl create secret", var


def _runs_memgrid(service: dict[str, object]) -> bool:
    return str(service.get("image", "")).startswith("memgrid")


def test_every_variable_the_recipes_set_is_read_by_memgrid() -> None:
    known = _read_by_settings() | r.variables_in_source() | _PLATFORM
    found = list(_recipe_variables())
    assert len({v for _, v in found}) >= 8, found
    unknown = [f"{where}: {var}" for where, var in found if var not in known]
    assert not unknown, f"variables memgrid never reads (a typo?): {unknown}"


def test_the_secrets_are_never_written_in_a_recipe() -> None:
    secrets = {"OPENAI_API_KEY", "MEMGRID_API_KEY", "MEMGRID_QDRANT_API_KEY"}
    compose = r.compose()
    for name, service in compose["services"].items():
        for var, value in (service.get("environment") or {}).items():
            if var in secrets:
                assert str(value).startswith("${"), f"compose {name} writes {var} in the file"
    for obj in r.k8s_objects():
        assert obj["kind"] != "Secret", "a Secret with a value in the repository"
        if obj["kind"] == "ConfigMap":
            assert not secrets & set(obj.get("data", {})), obj["metadata"]["name"]
    for var, value in r.env_file(r.DEPLOY / "memgrid.env").items():
        assert var not in secrets or not value, f"deploy/memgrid.env writes {var}"
