"""``GET /metrics``: the API process's Prometheus metrics (text exposition format).

Not public: with ``MEMGRID_API_KEY`` set it needs the same bearer token as every other route
(Prometheus sends one with ``authorization: {credentials: ...}`` in its scrape config), since
the numbers tell how busy the service is. Each scrape samples the ready stream (inbox lag, a
few commands whatever the number of agents); when Redis is away the last sample is served.
Names are listed in docs/metrics.md.
"""

from __future__ import annotations

import structlog
from litestar import Response, get

from agents import metrics
from bus.connection import TRANSIENT_ERRORS
from orchestrator.api.state import Api

__all__ = ("prometheus_metrics",)

log = structlog.get_logger("memgrid.api")


@get("/metrics", include_in_schema=False)
async def prometheus_metrics(api: Api) -> Response[bytes]:
    """The metrics of this process: its embedded worker's, the model's, the inbox lag."""
    metrics.enable()
    try:
        await metrics.sample_ready(api.rt.redis)
    except TRANSIENT_ERRORS as exc:
        log.warning("metrics_sample_failed", error=repr(exc))
    return Response(metrics.render(), media_type=metrics.CONTENT_TYPE)
