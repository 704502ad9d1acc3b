"""``GET /metrics``: the API process's Prometheus metrics (text exposition format).

Not public: with ``MEMGRID_API_KEY`` set it needs the same bearer token as every other route
(Prometheus sends one with ``authorization: {credentials: ...}`` in its scrape config), since
the numbers tell how busy the service is. Each scrape samples the ready stream (inbox lag, a
few commands whatever the number of agents); when Redis is away the last sample is served.
Names are listed in docs/metrics.md.
"""

from __future__ import annotations

from litestar import Response, get

from agents import metrics
from orchestrator.api.state import Api

__all__ = ("prometheus_metrics",)


@get("/metrics", include_in_schema=False)
async def prometheus_metrics(api: Api) -> Response[bytes]:
    """The metrics of this process: its embedded worker's, the model's, the inbox lag."""
    metrics.enable()
    await metrics.try_sample_ready(api.rt.redis)  # Redis away: the last sample is served
    return Response(metrics.render(), media_type=metrics.CONTENT_TYPE)
