"""Letta's whole public REST surface, answered: implemented, or 501 naming what to use instead.

Letta's last server release (0.16.8) publishes 235 public operations (its ``/_internal_``
paths excluded); ``letta_operations.txt`` beside this module lists them
(:data:`LETTA_OPERATIONS`). Those the app serves are whatever its routes answer; every other
one gets a handler
(:func:`unimplemented_handlers`) that answers ``501`` with a JSON body whose ``detail`` names
the operation and what memgrid offers instead, so a client learns why, not a bare 404.

``python docs/_gen_letta_compat.py`` writes ``docs/letta-compat.md``, the coverage table
(``--reference letta-openapi-0.16.8.json`` regenerates the operation list from Letta's
OpenAPI document first); ``tests/api/test_letta_compat.py`` fails when the table is stale or the
served app disagrees with it.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from litestar import Litestar, Response, route
from litestar.enums import HttpMethod
from litestar.handlers import HTTPRouteHandler

__all__ = (
    "COVERAGE_DOC",
    "LETTA_OPERATIONS",
    "LETTA_VERSION",
    "LettaOperation",
    "coverage_table",
    "implemented",
    "instead",
    "main",
    "served_routes",
    "unimplemented_handlers",
)

COVERAGE_DOC = Path(__file__).resolve().parents[2] / "docs" / "letta-compat.md"
OPERATIONS_FILE = Path(__file__).resolve().parent / "letta_operations.txt"
_METHODS = ("get", "post", "put", "patch", "delete")
_PARAM = re.compile(r"\{[^}]*\}")

# What memgrid offers instead, by the resource (the path's segment after /v1/).
_INSTEAD = {
    "admin": "memgrid has no users or organizations: MEMGRID_API_KEY guards the whole API",
    "agents": "memgrid serves agents, their messages (sync, async, SSE stream, cancel), core "
    "memory blocks, tools, archival memory, sources/folders and context window under "
    "/v1/agents/; see docs/letta-compat.md for the list",
    "auth": "send Authorization: Bearer <MEMGRID_API_KEY>; there are no sessions or tokens",
    "blocks": "blocks: GET/POST /v1/blocks/, GET/PATCH/DELETE /v1/blocks/{block_id}, attached "
    "to agents with PATCH /v1/agents/{agent_id}/core-memory/blocks/attach/{block_id}",
    "chat": "send messages with POST /v1/agents/{agent_id}/messages (or .../messages/stream "
    "for Server-Sent Events)",
    "conversations": "an agent has one conversation: POST and GET /v1/agents/{agent_id}/messages",
    "embeddings": "GET /v1/models/embedding lists the embedders; passages are embedded when "
    "inserted",
    "folders": "folders: GET/POST /v1/folders/, upload to /v1/folders/{folder_id}/upload, "
    "attach with PATCH /v1/agents/{agent_id}/folders/attach/{folder_id}",
    "groups": "agents work together through their messaging tools "
    "(send_message_to_agent_and_wait_for_reply, send_message_to_agents_matching_tags) and "
    "YAML workflows (`memgrid run`)",
    "health": "GET /v1/health/",
    "identities": "tag agents (tags, metadata) and find them with GET /v1/agents/?tags=...",
    "jobs": "GET /v1/jobs/{job_id} (runs and uploads), PATCH /v1/jobs/{job_id}/cancel and "
    "GET /v1/runs/",
    "mcp-servers": "custom tools are Python functions: PUT /v1/tools/ with source_code "
    "(pip_requirements for dependencies)",
    "messages": "an agent's messages: GET/POST /v1/agents/{agent_id}/messages",
    "models": "GET /v1/models/ and GET /v1/models/embedding",
    "passages": "GET /v1/agents/{agent_id}/archival-memory/search",
    "providers": "models come from the OpenAI-compatible endpoint in OPENAI_BASE_URL "
    "(OPENAI_API_KEY); GET /v1/models/ lists them",
    "ready": "GET /v1/health/",
    "runs": "runs: GET /v1/runs/, /v1/runs/active, /v1/runs/{run_id} and its messages, "
    "steps, usage and stream",
    "sandbox-config": "tools run in memgrid's own sandbox, configured by the server's "
    "MEMGRID_SANDBOX_* environment (docs/security.md)",
    "sources": "sources: GET/POST /v1/sources/, upload to /v1/sources/{source_id}/upload, "
    "attach with PATCH /v1/agents/{agent_id}/sources/attach/{source_id}",
    "steps": "a run's steps: GET /v1/runs/{run_id}/steps; one step and its messages: GET "
    "/v1/steps/{step_id} and /v1/steps/{step_id}/messages",
    "tags": "GET /v1/tags/",
    "telemetry": "memgrid logs each run with structlog on the server's output",
    "tools": "tools: GET/POST/PUT /v1/tools/, GET/PATCH/DELETE /v1/tools/{tool_id}, attached "
    "with PATCH /v1/agents/{agent_id}/tools/attach/{tool_id}",
    "voice-beta": "send messages with POST /v1/agents/{agent_id}/messages/stream",
}


class LettaOperation(NamedTuple):
    """One operation of Letta's OpenAPI document."""

    method: str
    path: str
    operation_id: str
    deprecated: bool = False


def _load(text: str) -> tuple[str, tuple[LettaOperation, ...]]:
    """The version and operations of ``letta_operations.txt``: a ``# letta <version>`` line,
    then ``METHOD PATH OPERATION_ID [deprecated]`` per line."""
    version, ops = "?", []
    for line in text.splitlines():
        if line.startswith("# letta "):
            version = line.split()[2]
        elif line.strip() and not line.startswith("#"):
            method, path, operation_id, *rest = line.split()
            ops.append(LettaOperation(method, path, operation_id, rest == ["deprecated"]))
    return version, tuple(ops)


LETTA_VERSION, LETTA_OPERATIONS = _load(OPERATIONS_FILE.read_text())


def _template(path: str) -> str:
    """A path with its parameters blanked and no trailing slash, for comparing routes."""
    return _PARAM.sub("{}", path).rstrip("/") or "/"


def _resource(path: str) -> str:
    return path.split("/")[2]


def instead(op: LettaOperation) -> str:
    """What memgrid offers in place of ``op``."""
    return _INSTEAD.get(_resource(op.path), "see docs/letta-compat.md for what memgrid serves")


def served_routes(app: Litestar) -> set[tuple[str, str]]:
    """``(METHOD, template)`` of every route the app answers itself (no 501 handlers)."""
    served: set[tuple[str, str]] = set()
    for app_route in app.routes:
        for handler in getattr(app_route, "route_handlers", ()):
            if isinstance(handler, HTTPRouteHandler) and not handler.opt.get("letta_501"):
                served.update((m, _template(app_route.path)) for m in handler.http_methods)
    return served


def implemented(app: Litestar) -> list[tuple[LettaOperation, bool]]:
    """Each of Letta's public operations and whether the app implements it."""
    served = served_routes(app)
    return [(op, (op.method, _template(op.path)) in served) for op in LETTA_OPERATIONS]


def unimplemented_handlers(served: Iterable[tuple[str, str]]) -> list[HTTPRouteHandler]:
    """A 501 handler for every public Letta operation not in ``served``."""
    taken = set(served)
    return [_handler(op) for op in LETTA_OPERATIONS if (op.method, _template(op.path)) not in taken]


def _handler(op: LettaOperation) -> HTTPRouteHandler:
    body = {
        "detail": (
            f"memgrid does not implement {op.method} {op.path} (Letta's {op.operation_id}); "
            f"instead: {instead(op)}"
        ),
        "operation_id": op.operation_id,
        "instead": instead(op),
        "coverage": "docs/letta-compat.md",
    }

    async def not_implemented() -> Response[dict[str, str]]:
        return Response(body, status_code=501)

    path = _PARAM.sub(lambda m: "{" + m.group(0)[1:-1] + ":str}", op.path)
    return route(
        path,
        http_method=[HttpMethod(op.method)],
        status_code=501,
        include_in_schema=False,
        name=f"letta_501_{op.operation_id}",
        opt={"letta_501": True},
    )(not_implemented)


def coverage_table(app: Litestar) -> str:
    """``docs/letta-compat.md``: Letta's public operations, implemented or 501, with totals."""
    rows = implemented(app)
    done = sum(1 for _op, ok in rows if ok)
    by_resource: Counter[str] = Counter()
    total: Counter[str] = Counter()
    for op, ok in rows:
        total[_resource(op.path)] += 1
        by_resource[_resource(op.path)] += ok
    lines = [
        "# Letta REST compatibility",
        "",
        "<!-- generated by `python docs/_gen_letta_compat.py`; "
        "tests/api/test_letta_compat.py keeps it true -->",
        "",
        f"Every public operation of Letta {LETTA_VERSION}'s OpenAPI document (its "
        "`/_internal_` paths excluded) is either implemented by memgrid or answers **501** "
        "with a JSON body whose `detail` names what memgrid offers instead.",
        "",
        f"**{done} implemented, {len(rows) - done} answer 501, of {len(rows)} public operations.**",
        "",
        "| resource | implemented | of |",
        "|---|---|---|",
        *(f"| {r} | {by_resource[r]} | {total[r]} |" for r in sorted(total)),
        "",
        "| operation | method | path | memgrid |",
        "|---|---|---|---|",
    ]
    for op, ok in rows:
        name = op.operation_id + (" (deprecated)" if op.deprecated else "")
        lines.append(f"| {name} | {op.method} | `{op.path}` | {'implemented' if ok else '501'} |")
    return "\n".join(lines) + "\n"


def operations_file(document: dict[str, Any]) -> str:
    """``letta_operations.txt`` from Letta's OpenAPI ``document``."""
    version = document.get("info", {}).get("version", "?")
    lines = [
        f"# letta {version}",
        "# Letta's public REST operations (its /_internal_ paths excluded), generated by",
        f"# python docs/_gen_letta_compat.py --reference letta-openapi-{version}.json",
    ]
    for path, item in document["paths"].items():
        if "/_internal" in path:
            continue
        for method in _METHODS:
            op = item.get(method)
            if op is not None:
                flag = " deprecated" if op.get("deprecated") else ""
                lines.append(f"{method.upper()} {path} {op['operationId']}{flag}")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Write the coverage table (and, with ``--reference``, the operation list first)."""
    parser = argparse.ArgumentParser(prog="docs/_gen_letta_compat.py")
    parser.add_argument("--reference", type=Path, help="Letta's OpenAPI document (JSON)")
    parser.add_argument("--out", type=Path, default=COVERAGE_DOC, help="the table to write")
    args = parser.parse_args(argv)
    if args.reference is not None:
        OPERATIONS_FILE.write_text(operations_file(json.loads(args.reference.read_text())))
        print(f"wrote {OPERATIONS_FILE}; run this again without --reference for the table")
        return 0
    from orchestrator.api.app import create_app
    from orchestrator.api.settings import ApiSettings

    args.out.write_text(coverage_table(create_app(ApiSettings())))
    print(f"wrote {args.out}")
    return 0
