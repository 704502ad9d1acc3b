"""``memgrid scripted-model``: serve a scripted OpenAI-compatible model until SIGINT/SIGTERM.

Prints the base URL (``http://127.0.0.1:PORT/v1``) alone on one line of stdout once the
server accepts connections, so that scripts can read it.
"""

from __future__ import annotations

import argparse
import importlib
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from orchestrator.cli._common import UsageError, command, run

if TYPE_CHECKING:  # the server (litestar) loads when the command runs, not for --help
    from agents.scripted import Policy, ScriptedModel

#: agents.scripted.DEFAULT_CONTEXT_WINDOW, named here so that --help need not import the server
DEFAULT_CONTEXT_WINDOW = 128_000

__all__ = ("load_policy", "register")

DEFAULT_POLICY = "agents.scripted.policies:echo"


def register(subparsers: Any) -> None:
    parser = command(
        subparsers,
        "scripted-model",
        _run,
        "serve a scripted OpenAI-compatible model for tests and offline demos",
        description="Serve a scripted OpenAI-compatible model on loopback until SIGINT/SIGTERM."
        " Prints the base URL on one line once ready.",
    )
    parser.add_argument(
        "--policy",
        default=DEFAULT_POLICY,
        help=f"module:attr of the policy callable (default {DEFAULT_POLICY})",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to bind; 0 picks a free one")
    parser.add_argument(
        "--model",
        action="append",
        default=None,
        metavar="NAME",
        help="a model id to list in /v1/models (repeatable)",
    )
    parser.add_argument(
        "--context-window",
        type=int,
        default=DEFAULT_CONTEXT_WINDOW,
        metavar="TOKENS",
        help=f"context window of every model (default {DEFAULT_CONTEXT_WINDOW})",
    )
    parser.add_argument(
        "--embedding-dim",
        type=int,
        default=384,
        metavar="SIZE",
        help="length of the vectors /v1/embeddings serves when a request names no dimensions "
        "(default 384)",
    )


def load_policy(spec: str) -> Policy:
    """Import the policy named ``module:attr`` or ``path/to/file.py:attr`` (``attr`` may be
    dotted), the way workflows name their tools.

    Raises:
        UsageError: the spec is malformed, the import fails, or the target is not callable.
    """
    module_name, sep, attr = spec.rpartition(":") if ".py:" in spec else spec.partition(":")
    if not sep or not module_name or not attr:
        raise UsageError(
            f"--policy must look like module:attr or path/to/file.py:attr, got {spec!r}"
        )
    target: Any
    if module_name.endswith(".py"):
        if not Path(module_name).is_file():
            raise UsageError(f"--policy {spec}: no file {Path(module_name).resolve()}")
        from agents.tools.registry import load_module_file

        try:
            target = load_module_file(module_name)
        except Exception as exc:  # the user's file: any error in it is theirs to fix
            raise UsageError(
                f"--policy {spec}: cannot load {module_name}: {type(exc).__name__}: {exc}"
            ) from exc
    else:
        try:
            target = importlib.import_module(module_name)
        except ImportError as exc:
            raise UsageError(
                f"--policy {spec}: cannot import module {module_name!r}: {exc}"
            ) from exc
    for part in attr.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise UsageError(
                f"--policy {spec}: {module_name!r} has no attribute {attr!r}"
            ) from None
    if not callable(target):
        raise UsageError(f"--policy {spec}: {attr!r} is not callable (a policy takes a request)")
    policy: Policy = target
    return policy


def _run(args: argparse.Namespace) -> int:
    policy = load_policy(args.policy)
    if args.port < 0 or args.port > 65535:
        raise UsageError(f"--port must be between 0 and 65535, got {args.port}")
    if args.embedding_dim < 1:
        raise UsageError(f"--embedding-dim must be a positive size, got {args.embedding_dim}")
    models = dict.fromkeys(args.model, args.context_window) if args.model else None
    from agents.scripted import ScriptedModel

    model = ScriptedModel(
        policy,
        host=args.host,
        port=args.port,
        models=models,
        default_context_window=args.context_window,
        embedding_dimension=args.embedding_dim,
    )
    run(lambda: _serve(model))
    return 0


async def _serve(model: ScriptedModel) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        try:
            await model.start()
        except OSError as exc:
            raise UsageError(f"cannot listen on {model.host}:{model.port}: {exc}") from exc
        try:
            print(model.base_url, flush=True)
            async for _ in signals:
                break
        finally:
            await model.aclose()
