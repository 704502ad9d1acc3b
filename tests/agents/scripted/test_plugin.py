"""The scripted model's fixtures come with memgrid itself, through its pytest11 entry point."""

from __future__ import annotations

import pytest

from agents.scripted import FunctionModel, ScriptedModel, pytest_plugin


def test_installing_memgrid_registers_the_plugin(pytestconfig: pytest.Config) -> None:
    assert pytestconfig.pluginmanager.get_plugin("memgrid-scripted") is pytest_plugin


async def test_both_models_are_fixtures(
    scripted_model: ScriptedModel, function_model: FunctionModel
) -> None:
    assert scripted_model.base_url.startswith("http://127.0.0.1:")
    assert function_model.endpoint is None
    assert scripted_model.policy is function_model.policy  # echo, both
