"""Control plane: CLI, REST API, YAML workflows, supervisor.

Its errors are all ``UserError`` (memgrid's root: :mod:`storage.errors`): ``ApiError`` (a 4xx
naming the field), ``ApiSettingsError`` (an API setting that cannot be used),
``WorkflowError`` (a workflow file that cannot be applied) and ``UsageError`` (the CLI's one
line, exit 2). Its entry points catch kinds, not lists: the CLI turns any ``UserError`` or
``RuntimeFailure`` into one line, the API answers 400 / 503 for those it has no closer
mapping for.

The Python API (``from orchestrator import open_runtime, apply_workflow, ...``) is ``__all__``
below; the agent side (``AgentSpec``, ``create_agent``, ``RunStore``...) is in :mod:`agents`.
A script's helpers (``model_or_stand_in``, ``recreate_agent``, ``send``) are in
:mod:`orchestrator.scripting`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the same names, seen by type checkers; at run time they load on first use
    from orchestrator.api import ApiError, ApiSettings, create_app
    from orchestrator.apply import Applied, apply_workflow
    from orchestrator.bootstrap import open_runtime
    from orchestrator.logs import configure_logging
    from orchestrator.render import print_event
    from orchestrator.scripting import ModelChoice, model_or_stand_in, recreate_agent, send
    from orchestrator.shared_archival import SharedArchival
    from orchestrator.supervisor import run_supervised, supervise
    from orchestrator.workflow import Workflow, WorkflowError, load_workflow
    from orchestrator.workflow_inputs import RunReport, run_inputs

__all__ = (
    "ApiError",
    "ApiSettings",
    "Applied",
    "ModelChoice",
    "RunReport",
    "SharedArchival",
    "Workflow",
    "WorkflowError",
    "apply_workflow",
    "configure_logging",
    "create_app",
    "load_workflow",
    "model_or_stand_in",
    "open_runtime",
    "print_event",
    "recreate_agent",
    "run_inputs",
    "run_supervised",
    "send",
    "supervise",
)

# Each public name and the module that defines it: importing orchestrator stays cheap (the CLI's
# --help imports it), and a name's module loads when the name is first used.
_LAZY: dict[str, str] = {
    **dict.fromkeys(("ApiError", "ApiSettings", "create_app"), "orchestrator.api"),
    **dict.fromkeys(("Applied", "apply_workflow"), "orchestrator.apply"),
    **dict.fromkeys(("open_runtime",), "orchestrator.bootstrap"),
    **dict.fromkeys(("configure_logging",), "orchestrator.logs"),
    **dict.fromkeys(("print_event",), "orchestrator.render"),
    **dict.fromkeys(
        ("ModelChoice", "model_or_stand_in", "recreate_agent", "send"), "orchestrator.scripting"
    ),
    **dict.fromkeys(("SharedArchival",), "orchestrator.shared_archival"),
    **dict.fromkeys(("run_supervised", "supervise"), "orchestrator.supervisor"),
    **dict.fromkeys(("Workflow", "WorkflowError", "load_workflow"), "orchestrator.workflow"),
    **dict.fromkeys(("RunReport", "run_inputs"), "orchestrator.workflow_inputs"),
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'orchestrator' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
