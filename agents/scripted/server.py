"""The scripted model served over real HTTP on loopback by uvicorn.

::

    async with ScriptedModel.serve(sequence(say("hi"))) as model:
        client = openai.AsyncOpenAI(base_url=model.base_url, api_key="x")
        ...
        assert model.requests[0].last_user_text == "hello"

    with ScriptedModel.start_in_thread(echo) as threaded:   # for sync code and subprocesses
        run_something(threaded.base_url)

The server runs as one asyncio task owned by the :class:`ScriptedModel` handle: started by
:meth:`ScriptedModel.start` and joined by :meth:`ScriptedModel.aclose`. It is a task rather
than a task-group child so that a pytest-asyncio fixture, whose set-up and teardown run in
different tasks, can own it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Generator
from types import TracebackType
from typing import Any, Unpack

import anyio
import anyio.from_thread
import structlog
import uvicorn

from agents.scripted._app import CUT_FILTER, AppSettings, ScriptedApp
from agents.scripted.policies import echo
from agents.scripted.protocol import ChatRequest
from agents.scripted.replies import Policy

__all__ = ("ScriptedModel", "ThreadedScriptedModel")

_log = structlog.get_logger(__name__)
_DRAIN_SECONDS = 5.0


class _Uvicorn(uvicorn.Server):
    """uvicorn without its signal handlers and its 0.1 s polling at start and stop."""

    def __init__(self, config: uvicorn.Config, app: ScriptedApp) -> None:
        super().__init__(config)
        self._app = app
        self.ready = asyncio.Event()
        self.stop = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # Signals belong to the process's entry point (the CLI uses anyio's receiver).
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        self.ready.set()

    async def main_loop(self) -> None:
        await self.on_tick(0)
        await self.stop.wait()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        self._app._begin_closing()
        for connection in list(self.server_state.connections):
            connection.shutdown()
        state = self.server_state
        if state.tasks:
            await asyncio.wait(set(state.tasks), timeout=_DRAIN_SECONDS)
        if state.tasks:
            _log.warning("scripted_model_cancelling_requests", count=len(state.tasks))
            for task in list(state.tasks):
                task.cancel()
            await asyncio.gather(*state.tasks, return_exceptions=True)
        # Closed transports report connection_lost a loop iteration or two later.
        for _ in range(1000):
            if not state.connections:
                break
            await asyncio.sleep(0.001)
        for server in self.servers:
            await server.wait_closed()


class ScriptedModel(ScriptedApp):
    """A scripted OpenAI-compatible model on ``http://HOST:PORT/v1``.

    Serves ``POST /v1/chat/completions`` (tool calls, streaming with tool-call deltas and
    usage), ``POST /v1/embeddings`` (deterministic hashing vectors), ``GET /v1/models``. All
    state and settings (``policy``, ``requests``…) are those of :class:`ScriptedApp`.

    Args:
        policy: decides each chat completion; default :func:`~agents.scripted.policies.echo`.
        host: address to bind (loopback by default).
        port: port to bind; 0 picks a free one.
        models: model ids and context windows listed by ``/v1/models``.
        default_context_window: window of models not listed.
        enforce_context_window: answer ``context_length_exceeded`` for oversized prompts.
        embeddings_policy: optional hook for embeddings (vectors, a fault, or ``None``).
        embedding_dimension: vector size when a request names no ``dimensions``.
        chunk_chars: characters per streamed content or argument fragment.
    """

    def __init__(
        self,
        policy: Policy = echo,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        **settings: Unpack[AppSettings],
    ) -> None:
        super().__init__(policy, **settings)
        self.host = host
        self.port = port
        self._server: _Uvicorn | None = None
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def serve(cls, policy: Policy = echo, **options: Any) -> ScriptedModel:
        """A model to use as ``async with ScriptedModel.serve(policy) as model:``.

        Args:
            policy: the policy.
            **options: the keyword arguments of :class:`ScriptedModel`.
        """
        return cls(policy, **options)

    @classmethod
    def start_in_thread(cls, policy: Policy = echo, **options: Any) -> ThreadedScriptedModel:
        """Serve on an event loop of its own thread, for sync code; call ``.stop()``.

        Args:
            policy: the policy (it runs on the server's thread).
            **options: the keyword arguments of :class:`ScriptedModel`.
        """
        with contextlib.ExitStack() as stack:
            portal = stack.enter_context(anyio.from_thread.start_blocking_portal())
            model = stack.enter_context(portal.wrap_async_context_manager(cls(policy, **options)))
            return ThreadedScriptedModel(model, stack.pop_all())

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT/v1``, for ``openai.AsyncOpenAI(base_url=...)``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/v1"

    async def start(self) -> None:
        """Bind and serve; returns once connections are accepted."""
        if self._task is not None:
            raise RuntimeError("this ScriptedModel is already serving")
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        # IPPROTO_TCP, not 0: asyncio only sets TCP_NODELAY on accepted sockets whose proto is
        # TCP, and without it every small response waits ~40 ms for a delayed ACK.
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
        except OSError:
            sock.close()
            raise
        self.port = int(sock.getsockname()[1])
        config = uvicorn.Config(
            self,
            lifespan="off",
            log_config=None,
            access_log=False,
            http="auto",  # httptools when installed (about twice as fast), else h11
            ws="none",
            interface="asgi3",
            proxy_headers=False,
            server_header=False,
            date_header=False,
            backlog=4096,
            timeout_keep_alive=30,
        )
        logging.getLogger("uvicorn.error").addFilter(CUT_FILTER)
        server = self._server = _Uvicorn(config, self)
        self._task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
        ready = asyncio.ensure_future(server.ready.wait())
        try:
            await asyncio.wait({self._task, ready}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            ready.cancel()
            if not server.ready.is_set():
                await self._join()
        if not server.ready.is_set():
            raise RuntimeError(f"the scripted model could not start on {self.base_url}")

    async def aclose(self) -> None:
        """Stop serving: pending slow replies are cut short, connections closed."""
        with anyio.CancelScope(shield=True):
            await self._join()

    async def _join(self) -> None:
        if self._server is not None:
            self._server.stop.set()
            self._server.should_exit = True
        task, self._task = self._task, None
        if task is not None:
            try:
                await task
            except asyncio.CancelledError:
                if not task.cancelled():
                    raise

    async def __aenter__(self) -> ScriptedModel:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class ThreadedScriptedModel:
    """A :class:`ScriptedModel` running on its own thread; see ``start_in_thread``.

    Attributes:
        model: the model (its ``policy`` may be replaced from any thread).
    """

    def __init__(self, model: ScriptedModel, stack: contextlib.ExitStack) -> None:
        self.model = model
        self._stack = stack

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT/v1``."""
        return self.model.base_url

    @property
    def requests(self) -> list[ChatRequest]:
        """Every chat request received so far."""
        return self.model.requests

    def stop(self) -> None:
        """Stop the server and its thread; idempotent."""
        self._stack.close()

    def __enter__(self) -> ThreadedScriptedModel:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
