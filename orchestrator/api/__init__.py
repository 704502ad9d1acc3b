"""The REST API: Letta-compatible paths and JSON over the bus, with SSE streaming.

``memgrid serve`` runs :func:`create_app` on uvicorn (default ``127.0.0.1:8283``, Letta's
port). The API keeps no agent state: every request reads and writes Redis, and messages go to
the workers through agents' inboxes, so several API processes can serve at once.
"""

from __future__ import annotations

from orchestrator.api.app import create_app
from orchestrator.api.errors import ApiError
from orchestrator.api.settings import DEFAULT_PORT, ApiSettings, ApiSettingsError

__all__ = ("DEFAULT_PORT", "ApiError", "ApiSettings", "ApiSettingsError", "create_app")
