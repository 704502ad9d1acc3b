"""The scripted model's fixtures, until tests/conftest.py registers the plugin for all."""

from __future__ import annotations

from agents.scripted.pytest_plugin import (  # noqa: F401
    scripted_client,
    scripted_model,
    scripted_model_env,
    scripted_model_thread,
)
