"""The CLI's event loop: uvloop for memgrid's processes, asyncio's on request."""

from __future__ import annotations

import asyncio

import pytest

from orchestrator.cli._common import run
from tests._util import loaded_by


async def _loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_commands_run_on_uvloop_unless_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MEMGRID_UVLOOP", raising=False)
    assert run(_loop_module).startswith("uvloop")
    monkeypatch.setenv("MEMGRID_UVLOOP", "0")
    assert run(_loop_module).startswith("asyncio")


def test_help_loads_no_model_client_server_or_redis() -> None:
    """``memgrid --help`` (and building the parser of every command) stays fast: the openai
    SDK, the web framework, the Redis client and structlog load when a command runs."""
    code = "from orchestrator.cli import build_parser\nbuild_parser().format_help()"
    heavy = ("openai", "litestar", "redis", "structlog", "onnxruntime", "qdrant_edge")
    assert loaded_by(code, heavy) == []


def test_the_scripted_model_help_names_its_real_default_window() -> None:
    from agents.scripted import DEFAULT_CONTEXT_WINDOW
    from orchestrator.cli import _scripted

    assert _scripted.DEFAULT_CONTEXT_WINDOW == DEFAULT_CONTEXT_WINDOW
