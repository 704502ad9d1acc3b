"""The Litestar application: routes, auth, errors, OpenAPI, and the process's runtime.

The lifespan opens the runtime (:func:`orchestrator.bootstrap.open_runtime`, which also takes
the embedded passage engine when nobody holds it) and, unless turned off, a worker in the same
task group, so that ``memgrid serve`` alone answers messages. Shutdown stops the worker
(running turns finish their current step, within a grace period) and closes the runtime.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import anyio
import structlog
from anyio.abc import TaskStatus
from litestar import Litestar, Request, get
from litestar.config.cors import CORSConfig
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.static_files import create_static_files_router

from agents import metrics
from orchestrator.api.agents import AgentsController
from orchestrator.api.archives import AgentArchivesController, ArchivesController
from orchestrator.api.auth import require_api_key
from orchestrator.api.blocks import BlocksController
from orchestrator.api.callbacks import CallbackSender
from orchestrator.api.compat import served_routes, unimplemented_handlers
from orchestrator.api.errors import exception_handlers
from orchestrator.api.messages import MessagesController
from orchestrator.api.metrics import prometheus_metrics
from orchestrator.api.models import ModelsController
from orchestrator.api.overview import AgentContextController, TagsController
from orchestrator.api.passages import PassagesController
from orchestrator.api.runs import (
    CancelController,
    JobsController,
    RunsController,
    health,
    version,
)
from orchestrator.api.settings import ApiSettings
from orchestrator.api.sources import source_routers
from orchestrator.api.state import ApiState, api_state
from orchestrator.api.steps import StepsController
from orchestrator.api.tools import ToolsController
from orchestrator.dashboard import dashboard_handlers

__all__ = ("create_app",)

log = structlog.get_logger("memgrid.api")

WORKER_DRAIN_S = 10.0
WORKER_READY_WAIT_S = 2.0


_ASSETS = "/schema/assets"


def _docs_assets() -> Any:
    """Swagger UI's files, served by memgrid itself: the docs page works with no network."""
    from swagger_ui_bundle import swagger_ui_path

    return create_static_files_router(
        path=_ASSETS,
        directories=[swagger_ui_path],
        include_in_schema=False,
        opt={"public": True},
        name="docs_assets",
    )


def _swagger() -> SwaggerRenderPlugin:
    """The docs page at ``/schema`` (and ``/schema/swagger``), referencing no other host."""
    return SwaggerRenderPlugin(
        path=["/", "/swagger"],
        js_url=f"{_ASSETS}/swagger-ui-bundle.js",
        css_url=f"{_ASSETS}/swagger-ui.css",
        standalone_preset_js_url=f"{_ASSETS}/swagger-ui-standalone-preset.js",
        favicon="",
    )


@get("/openapi.json", include_in_schema=False, media_type="application/json")
async def openapi_json(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """The OpenAPI 3.1 document, generated from the request and response Structs."""
    return request.app.openapi_schema.to_schema()


class _Ready:
    """The ``task_status`` of the embedded worker: what the lifespan waits on, a while."""

    def __init__(self) -> None:
        self.event = anyio.Event()

    def started(self, value: None = None) -> None:
        self.event.set()


@asynccontextmanager
async def _embedded_worker(api: ApiState) -> AsyncIterator[None]:
    from agents.worker import Worker, WorkerSettings

    done = anyio.Event()
    stopping = False
    current: list[Worker] = []

    async def supervise(*, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Run the worker; restart it (after a pause) if it fails, until the API stops."""
        try:
            while not stopping:
                worker = Worker(
                    api.rt,
                    WorkerSettings(burst=False, concurrency=api.settings.worker_concurrency),
                )
                current[:] = [worker]
                try:
                    await worker.run(task_status=task_status)
                except Exception as exc:  # the API keeps serving; the next worker takes over
                    log.error("api_worker_failed", worker_id=worker.id, error=repr(exc))
                    await anyio.sleep(1.0)
                task_status = anyio.TASK_STATUS_IGNORED
        finally:
            done.set()

    async with anyio.create_task_group() as tg:
        ready = _Ready()
        tg.start_soon(partial(supervise, task_status=ready))
        # Ready in milliseconds when Redis answers. When it does not, the API serves (503 with
        # Retry-After) instead of refusing connections until it does; the worker waits for it.
        with anyio.move_on_after(WORKER_READY_WAIT_S):
            await ready.event.wait()
        log.info("api_worker_started", worker_id=current[0].id, ready=ready.event.is_set())
        try:
            yield
        finally:
            stopping = True
            for worker in current:
                worker.stop()  # running turns finish their current step, within a grace period
            with anyio.CancelScope(shield=True), anyio.move_on_after(WORKER_DRAIN_S):
                await done.wait()
            tg.cancel_scope.cancel()


def create_app(settings: ApiSettings | None = None) -> Litestar:
    """The API application.

    Args:
        settings: how to serve; default :meth:`ApiSettings.from_env`.
    """
    settings = settings or ApiSettings.from_env()

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        from orchestrator.bootstrap import open_runtime

        metrics.enable()  # from the start, so the embedded worker's first turns count
        async with (
            open_runtime(redis_url=settings.redis_url, own_archival=True) as rt,
            anyio.create_task_group() as background,
        ):
            api = ApiState(rt=rt, settings=settings, background=background)
            app.state.api = api
            sender = CallbackSender(rt.redis, ttl_s=rt.settings.run_ttl_s)
            await background.start(sender.run)
            try:
                if settings.worker:
                    async with _embedded_worker(api):
                        yield
                else:
                    yield
            finally:
                background.cancel_scope.cancel()  # ingestions in flight record their failure

    cors = CORSConfig(allow_origins=list(settings.cors_origins)) if settings.cors_origins else None
    app = Litestar(
        route_handlers=[
            health,
            prometheus_metrics,
            openapi_json,
            _docs_assets(),
            AgentsController,
            MessagesController,
            PassagesController,
            BlocksController,
            ToolsController,
            RunsController,
            JobsController,
            *source_routers(),
            ArchivesController,
            AgentArchivesController,
            AgentContextController,
            CancelController,
            ModelsController,
            StepsController,
            TagsController,
            *dashboard_handlers(),  # the page at / and its read routes
        ],
        dependencies={"api": Provide(api_state)},
        guards=[require_api_key],
        exception_handlers=exception_handlers,
        lifespan=[lifespan],
        cors_config=cors,
        request_max_body_size=settings.max_body_bytes,
        # Logging is configured once at process entry (orchestrator.logs); Litestar's default
        # would raise the root logger to INFO and log every model request.
        logging_config=None,
        openapi_config=OpenAPIConfig(
            title="memgrid",
            version=version(),
            description="MemGPT-style agents as a service; a Letta-compatible REST API.",
            render_plugins=[_swagger()],
        ),
    )
    # The rest of Letta's public surface answers 501 naming what to use instead, not 404.
    for handler in unimplemented_handlers(served_routes(app)):
        app.register(handler)
    app.state.api_key = settings.api_key
    return app
