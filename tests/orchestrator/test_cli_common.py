"""The CLI's event loop: uvloop for memgrid's processes, asyncio's on request."""

from __future__ import annotations

import asyncio

import pytest

from orchestrator.cli._common import run


async def _loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_commands_run_on_uvloop_unless_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MEMGRID_UVLOOP", raising=False)
    assert run(_loop_module).startswith("uvloop")
    monkeypatch.setenv("MEMGRID_UVLOOP", "0")
    assert run(_loop_module).startswith("asyncio")
