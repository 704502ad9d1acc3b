"""The bundled dashboard: memgrid's own web page at ``/``, served with every asset it uses.

The page is a few hand-written ES modules (``static/``) with no build step: every view reads
and writes through the REST API's own routes (``/v1/...``), sending the API key like any
client, and the few facts the API has no route for (inbox depths, block history, workers,
dead letters, a run's trail across agents) come from small read routes here
(``/dashboard/api/...``), guarded by the same key. The page and its assets are public: they
hold no data. A Content-Security-Policy allows nothing but this origin, so no script, style,
font or connection can reach another host, and no inline script can run.
"""

from __future__ import annotations

from typing import Any

from orchestrator.dashboard.data import DashboardDataController
from orchestrator.dashboard.pages import CSP, index, static_assets
from orchestrator.dashboard.trace import RunTraceController

__all__ = (
    "CSP",
    "DashboardDataController",
    "RunTraceController",
    "dashboard_handlers",
    "static_assets",
)


def dashboard_handlers() -> list[Any]:
    """The dashboard's route handlers, to mount in the API app."""
    return [index, static_assets(), DashboardDataController, RunTraceController]
