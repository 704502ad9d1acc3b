"""The sandbox's settings from the environment: limits per deployment and per tool, policy."""

from __future__ import annotations

from pathlib import Path

import pytest

from agents.sandbox import SandboxLimits, SandboxSettings


def test_defaults_without_variables() -> None:
    settings = SandboxSettings.from_env({})
    assert settings.limits == SandboxLimits()
    assert settings.network == "all"
    assert settings.user == "memgrid-tool"
    assert settings.cgroup == "auto"
    assert settings.api_url is None
    assert settings.home == Path(".memgrid").absolute()


def test_deployment_and_per_tool_limits() -> None:
    settings = SandboxSettings.from_env(
        {
            "MEMGRID_SANDBOX_TIMEOUT_S": "2.5",
            "MEMGRID_SANDBOX_MAX_PROCESSES": "16",
            "MEMGRID_SANDBOX_MEMORY_MB": "512",
            "MEMGRID_SANDBOX_TOOL_LIMITS": '{"report": {"timeout_s": 120, "memory_mb": 2048}}',
            "MEMGRID_SANDBOX_NETWORK": "api",
            "MEMGRID_API_URL": "http://127.0.0.1:8283",
        }
    )
    assert settings.limits_for("other") == SandboxLimits(
        timeout_s=2.5, max_processes=16, memory_mb=512
    )
    report = settings.limits_for("report")
    assert (report.timeout_s, report.memory_mb, report.max_processes) == (120, 2048, 16)
    assert isinstance(report.memory_mb, int)
    assert settings.network == "api"
    assert settings.api_url == "http://127.0.0.1:8283"


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"MEMGRID_SANDBOX_NETWORK": "lan"}, "MEMGRID_SANDBOX_NETWORK must be all, api or none"),
        ({"MEMGRID_SANDBOX_CPU_S": "1.5"}, "MEMGRID_SANDBOX_CPU_S must be a whole number"),
        ({"MEMGRID_SANDBOX_TIMEOUT_S": "soon"}, "MEMGRID_SANDBOX_TIMEOUT_S must be a number"),
        ({"MEMGRID_SANDBOX_MAX_PROCESSES": "0"}, "MEMGRID_SANDBOX_MAX_PROCESSES must be positive"),
        ({"MEMGRID_SANDBOX_TOOL_LIMITS": "{bad"}, "MEMGRID_SANDBOX_TOOL_LIMITS must be JSON"),
        (
            {"MEMGRID_SANDBOX_TOOL_LIMITS": '{"t": {"threads": 4}}'},
            "MEMGRID_SANDBOX_TOOL_LIMITS['t']: unknown limit 'threads'; the limits are timeout_s",
        ),
        (
            {"MEMGRID_SANDBOX_TOOL_LIMITS": '{"t": {"timeout_s": -1}}'},
            "MEMGRID_SANDBOX_TOOL_LIMITS['t']: timeout_s must be positive",
        ),
    ],
)
def test_bad_values_name_the_variable(variables: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match="^" + message.replace("[", r"\[").replace("(", r"\(")):
        SandboxSettings.from_env(variables)
